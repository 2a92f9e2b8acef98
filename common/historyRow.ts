// One decision as the history database stores it (common/history.ts), without the database:
// the panel's page (common/panelApi.ts) reads the same rows and cannot load sqlite's types.
/** One stored decision, in the order of the table's columns after id. */
export interface HistoryRow {
  at: number;
  pid: number;
  uid: number | null;
  program: string;
  comm: string | null;
  host: string | null;
  dest: string;
  port: number;
  protocol: string;
  allow: boolean;
  reason: string;
  rule: string | null;
  connections: number;
}
