// One handler per GUI message type (gui-protocol.md, "Client -> service messages"), behind one
// dispatcher that reads each message with common/guiProtocol.ts, so a handler receives its own
// message, checked and typed. Every reply carries "type"; bad input gets an `error` and changes
// nothing.
import { readClientMessage, type ClientMessage, type StatusReply } from '../../common/guiProtocol.js';
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
import { authorized, fail, type Handler, type Handlers } from './guiReply.js';

export interface GuiContext {
  rules: RulesStore;
  extended: ExtendedRulesStore;
  config: ConfigStore;
  sessions: SessionDecisions;
  authorizer: Authorizer;
  status: () => Omit<StatusReply, 'type'>;
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

/** Strips the tray's display suffix: "firefox (www.example.org.)" -> "firefox". */
function bareName(appName: string): string {
  return appName.replace(/ \([^()]*\)$/, '');
}

const handlers: Handlers = {
  list_rules: (ctx, client) => {
    client.send({ type: 'rules_list', rules: ctx.rules.rules.toJSON() });
  },

  delete_rule: async (ctx, client, msg) => {
    if (!(await authorized(ctx, client, 'delete_rule', 'delete rules'))) return;
    const result = await ctx.rules.deleteKey(msg.key);
    if (!result.ok) fail(client, 'delete_rule', result.error);
    client.send({ type: 'rule_deleted', key: msg.key, success: result.ok && result.deleted });
  },

  add_rule: async (ctx, client, msg) => {
    const p = msg.port ?? 0;
    const path = msg.app_path ?? '';
    const name = bareName(msg.app_name ?? '');
    const dest = msg.dest_ip ?? '';
    // Subject choice: gui-protocol.md, add_rule.
    let subject: string;
    let rulePort: RulePort = msg.all_ports === true || p === 0 ? '*' : p;
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
    const result = await ctx.rules.setRule(subject, rulePort, msg.allow);
    if (!result.ok) fail(client, 'add_rule', result.error);
    else ctx.prompts.ruleSaved(client, subject, rulePort);
  },

  // Forgetting a remembered answer (a deny, too) changes what the firewall decides: a rule edit.
  clear_cache: async (ctx, client, msg) => {
    if (!(await authorized(ctx, client, 'clear_cache', 'clear remembered answers'))) return;
    ctx.sessions.forget(msg.cache_key);
    ctx.prompts.forgetKey(msg.cache_key);
  },

  cancel_popup: () => {
    // Accepted and ignored (gui-protocol.md).
  },

  gui_response: async (ctx, client, msg) => {
    const outcome = ctx.prompts.answer(client, {
      requestId: msg.request_id,
      allow: msg.allow,
      permanent: msg.permanent ?? false,
      allPorts: msg.all_ports ?? false,
      duration: msg.duration ?? '',
    });
    // The verdicts are already out; this client's next message waits until an "always" rule is
    // saved, so a list_rules right after the answer shows it.
    if (outcome.applied) await outcome.saved;
  },

  // ---- extensions for the bastion CLI ----

  ...ruleHandlers,

  /** Optional self-description; `answers_prompts: false` = send no prompts, do not wait for me. */
  hello: (ctx, client, msg) => {
    if (msg.answers_prompts !== undefined) ctx.prompts.setAnswering(client, msg.answers_prompts);
    if (msg.details !== undefined) ctx.prompts.setDetails?.(client, msg.details);
  },

  subscribe: (ctx, client, msg) => {
    if (!FEEDS.includes(msg.feed)) return fail(client, 'subscribe', `unknown feed "${msg.feed}"; feeds: ${FEEDS.join(', ')}`);
    ctx.feed.subscribe(client);
    client.send({ type: 'subscribed', feed: msg.feed });
  },

  unsubscribe: (ctx, client, msg) => {
    ctx.feed.unsubscribe(client);
    client.send({ type: 'unsubscribed', feed: msg.feed });
  },

  status: (ctx, client) => {
    client.send({ type: 'status', ...ctx.status() });
  },

  set_mode: async (ctx, client, msg) => {
    if (!(await authorized(ctx, client, 'set_mode', 'change the mode'))) return;
    const next: BastionConfig = { ...ctx.config.current, mode: msg.mode };
    const saved = await ctx.config.save(next);
    if (!saved.ok) return fail(client, 'set_mode', saved.error);
    ctx.onConfigChanged(ctx.config.current, 'mode');
    client.send({ type: 'mode_changed', mode: msg.mode });
  },

  /** Every config.json key in force, or the one named. Reading needs no authorization. */
  get_config: (ctx, client, msg) => {
    const all = configJson(ctx.inForce());
    if (msg.key === undefined) return client.send({ type: 'config', config: all });
    if (!CONFIG_KEYS.includes(msg.key)) return fail(client, 'get_config', unknownConfigKey(msg.key));
    client.send({ type: 'config', config: { [msg.key]: all[msg.key]! } });
  },

  /**
   * One config.json key, checked by the parser that reads the file (its error word for word),
   * authorized like a rule change, saved atomically and in force at once.
   */
  set_config: async (ctx, client, msg) => {
    const { key: name, value } = msg;
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

/** Reads one message (JSON.parse's value) and hands it to its type's handler; bad input gets an `error`. */
export async function dispatchGuiMessage(ctx: GuiContext, client: GuiClient, message: unknown): Promise<void> {
  const read = readClientMessage(message);
  if (!read.ok) return client.send({ type: 'error', ...read.refusal });
  // The table gives each type its own handler; TypeScript cannot pair them through a variable.
  const handler = handlers[read.message.type] as Handler<ClientMessage['type']>;
  await handler(ctx, client, read.message);
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
