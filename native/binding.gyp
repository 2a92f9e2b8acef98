{
  "targets": [
    {
      "target_name": "bastion_native",
      "sources": ["src/addon.c", "src/queue.c", "src/sock_diag.c", "src/peercred.c", "src/sd_notify.c", "src/proc_events.c", "src/fast_path.c", "src/caller_bpf.c"],
      # The BPF programs (bpf/*.bpf.c) are compiled by clang and embedded as libbpf skeletons
      # (bpf/skeleton.sh), which src/caller_bpf.c includes.
      "actions": [
        {
          "action_name": "caller_skeleton",
          "inputs": ["bpf/skeleton.sh", "bpf/caller.bpf.c", "bpf/caller_record.h", "bpf/kernel_types.h"],
          "outputs": ["<(SHARED_INTERMEDIATE_DIR)/caller.skel.h"],
          "action": ["sh", "bpf/skeleton.sh", "bpf/caller.bpf.c", "<(SHARED_INTERMEDIATE_DIR)"]
        }
      ],
      "include_dirs": ["<(SHARED_INTERMEDIATE_DIR)", "bpf"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"],
      "libraries": ["-lnetfilter_queue", "-lmnl", "-lbpf"],
      "conditions": [
        ["OS=='linux' and '<!(echo $BASTION_ASAN)'=='1'", {
          "cflags": ["-fsanitize=address", "-fno-omit-frame-pointer", "-O1"],
          "ldflags": ["-fsanitize=address"]
        }]
      ]
    }
  ]
}
