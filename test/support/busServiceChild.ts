// The service's end of the bus (service/helperLink.ts) on its own, for tests that run it as
// some user: `node --import tsx busServiceChild.ts ENDPOINT PAIRING_TIMEOUT_MS`. Logs JSON
// lines to stderr, as the daemon does.
import { createLogger } from '../../common/log.js';
import { HelperLink } from '../../service/helperLink.js';

const [endpoint, pairingTimeoutMs] = process.argv.slice(2);
const log = createLogger({ name: 'bus-service', json: true });
const link = new HelperLink({ endpoint: endpoint!, version: 'test', heartbeatMs: 100, pairingTimeoutMs: Number(pairingTimeoutMs) }, () => [], log);
link.start();
process.on('SIGTERM', () => {
  link.stop();
  process.exit(0);
});
