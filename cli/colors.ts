// ANSI colours for the terminal commands: on for a terminal, off for pipes and files, and
// NO_COLOR / FORCE_COLOR honoured (https://no-color.org).
export interface Colors {
  green(text: string): string;
  red(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  bold(text: string): string;
  dim(text: string): string;
}

const wrap =
  (open: number, close: number) =>
  (text: string): string =>
    `\x1b[${open}m${text}\x1b[${close}m`;

const ON: Colors = { green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39), cyan: wrap(36, 39), bold: wrap(1, 22), dim: wrap(2, 22) };
const same = (text: string): string => text;
const OFF: Colors = { green: same, red: same, yellow: same, cyan: same, bold: same, dim: same };

export function colorsFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Colors {
  const force = env['FORCE_COLOR'];
  if (force !== undefined && force !== '' && force !== '0') return ON;
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return OFF;
  return stream.isTTY ? ON : OFF;
}

export const NO_COLORS = OFF;
