// `bastion inbound status|enable|disable`: config.json's inbound_protection through the running
// service (set_config, authorized by polkit like any config change), then what the helper made
// of it: another inbound firewall left alone, or Bastion's own chains (helper/inbound).
import type { Command } from 'commander';
import { visible } from '../common/visibleText.js';
import { requestOrExit } from './commandRequests.js';
import { AUTHORIZED_REPLY_MS } from './guiClient.js';
import { DEFAULTS } from './defaults.js';

interface InboundJson {
  wanted?: unknown;
  helper_applies?: unknown;
  state?: unknown;
  firewall?: unknown;
  detail?: unknown;
}

/** One line for `bastion status` and `bastion inbound status`. */
export function inboundLine(inbound: unknown): string {
  if (typeof inbound !== 'object' || inbound === null) return 'unknown (an older service)';
  const i = inbound as InboundJson;
  const detail = typeof i.detail === 'string' && i.detail !== '' ? ` (${visible(i.detail)})` : '';
  if (!i.wanted) return 'not filtered by Bastion (inbound_protection is false; `bastion inbound enable` turns it on)';
  if (!i.helper_applies) return 'wanted, but the helper does not apply it (not connected, --no-inbound or --no-rules)';
  switch (i.state) {
    case 'bastion':
      return `protected by Bastion's own chains: loopback, replies, ping, DHCP and IPv6 neighbour discovery pass, the rest is dropped${detail}`;
    case 'other':
      return `protected by ${visible(String(i.firewall))}, left alone${detail}`;
    case 'error':
      return `NOT PROTECTED: Bastion's chains could not be installed${detail}`;
    case 'off':
      return 'wanted; the helper has not applied it yet';
    default:
      return 'wanted; no report from the helper yet';
  }
}

async function inboundStatus(socket: string): Promise<InboundJson> {
  const status = await requestOrExit(socket, { type: 'status' }, 'status');
  return (status['inbound'] ?? {}) as InboundJson;
}

/** After a change, the helper's report follows within a moment: wait for it (at most `ms`). */
async function settled(socket: string, enabled: boolean, ms: number): Promise<InboundJson> {
  const deadline = Date.now() + ms;
  for (;;) {
    const now = await inboundStatus(socket);
    const done = !now.helper_applies || (enabled ? now.state !== null && now.state !== 'off' : now.state === 'off');
    if (done || Date.now() > deadline) return now;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function registerInboundCommand(program: Command): void {
  const socketOption = ['--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath] as const;
  const inbound = program.command('inbound').description('inbound protection: another firewall left alone, else a minimal policy of our own');
  inbound
    .command('status')
    .option(...socketOption)
    .action(async (opts: { socket: string }) => {
      process.stdout.write(`inbound: ${inboundLine(await inboundStatus(opts.socket))}\n`);
    });
  for (const [name, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    inbound
      .command(name)
      .description(`set inbound_protection to ${enabled} (authorized like a rule edit)`)
      .option(...socketOption)
      .action(async (opts: { socket: string }) => {
        await requestOrExit(opts.socket, { type: 'set_config', key: 'inbound_protection', value: enabled }, 'config_changed', {
          timeoutMs: AUTHORIZED_REPLY_MS,
        });
        process.stdout.write(`inbound: ${inboundLine(await settled(opts.socket, enabled, 10_000))}\n`);
      });
  }
}
