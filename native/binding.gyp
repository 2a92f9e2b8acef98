{
  "targets": [
    {
      "target_name": "bastion_native",
      "sources": ["src/addon.c", "src/queue.c", "src/sock_diag.c", "src/peercred.c", "src/sd_notify.c", "src/proc_events.c", "src/fast_path.c", "src/caller_bpf.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"],
      "libraries": ["-lnetfilter_queue", "-lmnl"],
      "conditions": [
        ["OS=='linux' and '<!(echo $BASTION_ASAN)'=='1'", {
          "cflags": ["-fsanitize=address", "-fno-omit-frame-pointer", "-O1"],
          "ldflags": ["-fsanitize=address"]
        }]
      ]
    }
  ]
}
