// What must never reach a terminal or a log raw from text a process controls: C0 controls
// (tab and newline aside, which the output itself uses), DEL, C1, the bidi marks, embeddings,
// overrides and isolates, and the line and paragraph separators (common/visibleText.ts).
// eslint-disable-next-line no-control-regex
export const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;

// eslint-disable-next-line no-control-regex
const RAW_CONTROL_ALL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/gu;

/** How many such characters text holds. */
export function rawControls(text: string): number {
  return text.match(RAW_CONTROL_ALL)?.length ?? 0;
}
