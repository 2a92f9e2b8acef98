// The Flatpak or Snap application a process belongs to, from its cgroup (/proc/PID/cgroup):
// flatpak run puts each app in a systemd scope `app-flatpak-<app id>-<n>.scope`, snapd in
// `snap.<snap name>.<app>-<uuid>.scope` (docs/rules.md, "app_id").
// Why the cgroup and not the environment or /.flatpak-info: both are the process's own to
// write (its environment; a mount namespace with a file of its choosing), while a cgroup is set
// by whoever may write cgroup.procs. The limit: under a systemd user session a user's processes
// may create and enter scopes in their own delegated subtree, so a program can claim another
// app id of the same user; not one of another user (docs/SECURITY.md).
const FLATPAK_SCOPE = /^app-flatpak-([A-Za-z0-9_][A-Za-z0-9._-]*)-[0-9]+\.scope$/;
const SNAP_SCOPE = /^snap\.([a-z0-9][a-z0-9-]*)\.[A-Za-z0-9-]+[.-][0-9a-f-]+\.scope$/;

/** The app id in /proc/PID/cgroup's unified (or name=systemd) line, or null. */
export function appIdFromCgroup(text: string): string | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith('0::') && !line.includes(':name=systemd:')) continue;
    const path = line.slice(line.indexOf(':/') + 1);
    // The innermost scope decides; a nested cgroup below it (a flatpak's own) is looked through.
    for (const part of path.split('/').reverse()) {
      const flatpak = FLATPAK_SCOPE.exec(part);
      if (flatpak) return flatpak[1]!;
      const snap = SNAP_SCOPE.exec(part);
      if (snap) return snap[1]!;
    }
  }
  return null;
}
