{
  "targets": [
    {
      "target_name": "bastion_native",
      "sources": [
        # The kernel families and the queue's reader thread, without N-API.
        "src/queue.c", "src/queue_reader.c", "src/fast_registry.c", "src/sock_diag.c", "src/peercred.c",
        "src/sd_notify.c", "src/proc_events.c", "src/fast_path.c", "src/caller_bpf.c",
        # The JS glue: one file per concern, registered by addon.c.
        "src/addon.c", "src/bind_util.c", "src/bind_queue.c", "src/bind_fast_path.c", "src/bind_proc_events.c",
        "src/bind_sock_diag.c", "src/bind_caller.c", "src/bind_kernel_verdicts.c", "src/bind_unix_sockets.c"
      ],
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
