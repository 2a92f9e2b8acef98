// One handler per GUI message type (gui-protocol.md, "Client -> service messages"), behind one
// dispatcher. Every reply carries "type"; bad input gets an `error` and changes nothing.
import { resolveProgramPath } from '../../common/programPath.js';
import type { Logger } from '../../common/log.js';
import type { Authorizer } from '../authorizer.js';
import { configJson, CONFIG_KEYS, unknownConfigKey, withConfigValue, type BastionConfig, type ConfigStore } from '../config.js';
import type { PromptAnswer } from '../prompts/answerScope.js';
import type { AnswerOutcome } from '../prompts/promptBroker.js';
import type { RulesStore } from '../rules/rulesStore.js';
import type { ExtendedRulesStore } from '../rules/extendedRulesStore.js';
import { ruleHandlers } from './ruleMessages.js';
import { destSubject, nameSubject, type RulePort } from '../rules/ruleKey.js';
import type { SessionDecisions } from '../sessions.js';
import type { GuiClient } from './guiServer.js';
import { authorized, fail, field, type Msg } from './guiReply.js';

export interface GuiContext {
  rules: RulesStore;
  extended: ExtendedRulesStore;
  config: ConfigStore;
  sessions: SessionDecisions;
  authorizer: Authorizer;
  status: () => Record<string, unknown>;
  prompts: PromptsForGui;
  feed: FeedForGui;
  /** The config in force: config.json's, with the mode of `bastion daemon --mode` if one was given. */
  inForce: () => Readonly<BastionConfig>;
  /** A GUI message saved config.json; `key` (its JSON name) is what it changed. */
  onConfigChanged: (config: BastionConfig, key: string) => void;
  log: Logger;
}

/** What the GUI handlers need of the prompt broker (prompts/promptBroker.ts). */
export interface PromptsForGui {
  answer(client: GuiClient, answer: PromptAnswer): AnswerOutcome;
  setAnswering(client: GuiClient, answers: boolean): void;
  /** hello's `details` (docs/gui-extensions.md): prompts to this client carry pid, uid, argv, host. */
  setDetails?(client: GuiClient, details: boolean): void;
  /** A rule was saved: learning-mode popups it answers close on the other clients. */
  ruleSaved(client: GuiClient, subject: string, port: RulePort): void;
  forgetKey(key: string): void;
}

/** What the GUI handlers need of the decision feed (decisionFeed.ts). */
export interface FeedForGui {
  subscribe(client: GuiClient): void;
  unsubscribe(client: GuiClient): void;
}

const FEEDS = ['decisions'];

type Handler = (ctx: GuiContext, client: GuiClient, msg: Msg) => Promise<void> | void;

/** Strips the tray's display suffix: "firefox (www.example.org.)" -> "firefox". */
function bareName(appName: string): string {
  return appName.replace(/ \([^()]*\)$/, '');
}

const handlers: Record<string, Handler> = {
  list_rules: (ctx, client) => {
    client.send({ type: 'rules_list', rules: ctx.rules.rules.toJSON() });
  },

  delete_rule: async (ctx, client, msg) => {
    const key = field(msg, 'key', 'string', true);
    if (!key.ok) return fail(client, 'delete_rule', key.error);
    if (!(await authorized(ctx, client, 'delete_rule', 'delete rules'))) return;
    const result = await ctx.rules.deleteKey(key.value!);
    if (!result.ok) fail(client, 'delete_rule', result.error);
    client.send({ type: 'rule_deleted', key: key.value!, success: result.ok && result.deleted });
  },

  add_rule: async (ctx, client, msg) => {
    const appPath = field(msg, 'app_path', 'string', false);
    const appName = field(msg, 'app_name', 'string', false);
    const port = field(msg, 'port', 'number', false);
    const allow = field(msg, 'allow', 'boolean', true);
    const allPorts = field(msg, 'all_ports', 'boolean', false);
    const destIp = field(msg, 'dest_ip', 'string', false);
    for (const f of [appPath, appName, port, allow, allPorts, destIp]) if (!f.ok) return fail(client, 'add_rule', f.error);
    const p = (port.ok && port.value) || 0;
    if (!Number.isInteger(p) || p < 0 || p > 65535) return fail(client, 'add_rule', `field "port" must be 0..65535`);
    const path = (appPath.ok && appPath.value) || '';
    const name = bareName((appName.ok && appName.value) || '');
    const dest = (destIp.ok && destIp.value) || '';
    // Subject choice: gui-protocol.md, add_rule.
    let subject: string;
    let rulePort: RulePort = (allPorts.ok && allPorts.value) || p === 0 ? '*' : p;
    const isPath = path !== '' && path !== 'unknown';
    if (isPath) subject = path;
    else if (name === 'unknown' && dest !== '') {
      subject = destSubject(dest, p);
      rulePort = '*';
    } else if (name !== '' && name !== 'unknown') subject = nameSubject(name);
    else return fail(client, 'add_rule', 'add_rule needs app_path, app_name or dest_ip');
    if (!(await authorized(ctx, client, 'add_rule', 'add rules'))) return;
    // Only for an authorized client: resolving tells whether a file exists.
    if (isPath) subject = await programSubject(ctx, path);
    const result = await ctx.rules.setRule(subject, rulePort, allow.ok ? allow.value! : false);
    if (!result.ok) fail(client, 'add_rule', result.error);
    else ctx.prompts.ruleSaved(client, subject, rulePort);
  },

  // Forgetting a remembered answer (a deny, too) changes what the firewall decides: a rule edit.
  clear_cache: async (ctx, client, msg) => {
    const key = field(msg, 'cache_key', 'string', true);
    if (!key.ok) return fail(client, 'clear_cache', key.error);
    if (!(await authorized(ctx, client, 'clear_cache', 'clear remembered answers'))) return;
    ctx.sessions.forget(key.value!);
    ctx.prompts.forgetKey(key.value!);
  },

  cancel_popup: () => {
    // Accepted and ignored (gui-protocol.md).
  },

  gui_response: async (ctx, client, msg) => {
    const requestId = field(msg, 'request_id', 'string', true);
    const allow = field(msg, 'allow', 'boolean', true);
    const permanent = field(msg, 'permanent', 'boolean', false);
    const allPorts = field(msg, 'all_ports', 'boolean', false);
    const duration = field(msg, 'duration', 'string', false);
    for (const f of [requestId, allow, permanent, allPorts, duration]) if (!f.ok) return fail(client, 'gui_response', f.error);
    const outcome = ctx.prompts.answer(client, {
      requestId: requestId.ok ? requestId.value! : '',
      allow: allow.ok ? allow.value! : false,
      permanent: (permanent.ok && permanent.value) || false,
      allPorts: (allPorts.ok && allPorts.value) || false,
      duration: (duration.ok && duration.value) || '',
    });
    // The verdicts are already out; this client's next message waits until an "always" rule is
    // saved, so a list_rules right after the answer shows it.
    if (outcome.applied) await outcome.saved;
  },

  // ---- extensions for the bastion CLI ----

  ...ruleHandlers,

  /** Optional self-description; `answers_prompts: false` = send no prompts, do not wait for me. */
  hello: (ctx, client, msg) => {
    const answers = field(msg, 'answers_prompts', 'boolean', false);
    const name = field(msg, 'client', 'string', false);
    const details = field(msg, 'details', 'boolean', false);
    for (const f of [answers, name, details]) if (!f.ok) return fail(client, 'hello', f.error);
    if (answers.ok && answers.value !== undefined) ctx.prompts.setAnswering(client, answers.value);
    if (details.ok && details.value !== undefined) ctx.prompts.setDetails?.(client, details.value);
  },

  subscribe: (ctx, client, msg) => {
    const feed = field(msg, 'feed', 'string', true);
    if (!feed.ok) return fail(client, 'subscribe', feed.error);
    if (!FEEDS.includes(feed.value!)) return fail(client, 'subscribe', `unknown feed "${feed.value!}"; feeds: ${FEEDS.join(', ')}`);
    ctx.feed.subscribe(client);
    client.send({ type: 'subscribed', feed: feed.value! });
  },

  unsubscribe: (ctx, client, msg) => {
    const feed = field(msg, 'feed', 'string', true);
    if (!feed.ok) return fail(client, 'unsubscribe', feed.error);
    ctx.feed.unsubscribe(client);
    client.send({ type: 'unsubscribed', feed: feed.value! });
  },

  status: (ctx, client) => {
    client.send({ type: 'status', ...ctx.status() });
  },

  set_mode: async (ctx, client, msg) => {
    const mode = field(msg, 'mode', 'string', true);
    if (!mode.ok) return fail(client, 'set_mode', mode.error);
    if (mode.value !== 'learning' && mode.value !== 'enforcement') {
      return fail(client, 'set_mode', 'field "mode" must be "learning" or "enforcement"');
    }
    if (!(await authorized(ctx, client, 'set_mode', 'change the mode'))) return;
    const next: BastionConfig = { ...ctx.config.current, mode: mode.value };
    const saved = await ctx.config.save(next);
    if (!saved.ok) return fail(client, 'set_mode', saved.error);
    ctx.onConfigChanged(ctx.config.current, 'mode');
    client.send({ type: 'mode_changed', mode: mode.value });
  },

  /** Every config.json key in force, or the one named. Reading needs no authorization. */
  get_config: (ctx, client, msg) => {
    const key = field(msg, 'key', 'string', false);
    if (!key.ok) return fail(client, 'get_config', key.error);
    const all = configJson(ctx.inForce());
    if (key.value === undefined) return client.send({ type: 'config', config: all });
    if (!CONFIG_KEYS.includes(key.value)) return fail(client, 'get_config', unknownConfigKey(key.value));
    client.send({ type: 'config', config: { [key.value]: all[key.value]! } });
  },

  /**
   * One config.json key, checked by the parser that reads the file (its error word for word),
   * authorized like a rule change, saved atomically and in force at once.
   */
  set_config: async (ctx, client, msg) => {
    const key = field(msg, 'key', 'string', true);
    if (!key.ok) return fail(client, 'set_config', key.error);
    if (!Object.prototype.hasOwnProperty.call(msg, 'value')) return fail(client, 'set_config', 'missing field "value"');
    const name = key.value!;
    const value = msg['value'];
    // Checked before polkit may ask for a password, and again on the config in force when saved.
    const checked = withConfigValue(ctx.config.current, name, value);
    if (!checked.ok) return fail(client, 'set_config', checked.error);
    if (!(await authorized(ctx, client, 'set_config', 'change the configuration'))) return;
    let warnings: string[] = [];
    const saved = await ctx.config.update((current) => {
      const next = withConfigValue(current, name, value);
      if (next.ok) warnings = next.warnings;
      return next;
    });
    if (!saved.ok) return fail(client, 'set_config', saved.error);
    ctx.onConfigChanged(ctx.config.current, name);
    const now = configJson(ctx.config.current)[name]!;
    ctx.log.info({ client: client.id, peer: client.peer, key: name, value: now }, 'config.json changed by a GUI client');
    client.send({ type: 'config_changed', key: name, value: now, warnings });
  },
};

export async function dispatchGuiMessage(ctx: GuiContext, client: GuiClient, message: unknown): Promise<void> {
  if (!message || typeof message !== 'object' || Array.isArray(message)) {
    return fail(client, null, 'a message must be a JSON object');
  }
  const msg = message as Msg;
  if (typeof msg['type'] !== 'string') return fail(client, null, 'missing field "type"');
  const handler = Object.prototype.hasOwnProperty.call(handlers, msg['type']) ? handlers[msg['type']] : undefined;
  if (!handler) return fail(client, msg['type'], `unknown message type "${msg['type']}"`);
  await handler(ctx, client, msg);
}

/**
 * A path rule names the file the kernel reports for a process, links resolved
 * (common/programPath.ts): /usr/bin/python3 is saved as /usr/bin/python3.11. A path the service
 * cannot find is saved as given: it does not see /home (ProtectHome=), and the GUI's add_rule
 * has no refusal for it; the CLI refuses a missing path before it asks (--force keeps it).
 */
async function programSubject(ctx: GuiContext, path: string): Promise<string> {
  if (!path.startsWith('/')) return path;
  const resolved = await resolveProgramPath(path);
  if (resolved.ok) {
    if (resolved.linkedFrom !== null) ctx.log.info({ given: resolved.linkedFrom, saved: resolved.path }, 'rule path is a link: the rule names its target');
    return resolved.path;
  }
  ctx.log.info({ path, reason: resolved.error }, 'rule path not found by the service: saved as given');
  return path;
}
