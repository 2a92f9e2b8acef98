// JSON-lines framing for the GUI socket: splits a byte stream at '\n', refusing any line over
// the limit before buffering more of it (gui-protocol.md, "Transport": 64 KiB).
export type LineEvent = { kind: 'line'; text: string } | { kind: 'too_long' };

export class LineReader {
  private parts: Buffer[] = [];
  private size = 0;
  private overflowed = false;

  constructor(private readonly maxLineBytes: number) {}

  /** Feeds a chunk; returns complete lines (and at most one too_long, after which it stops). */
  push(chunk: Buffer): LineEvent[] {
    const out: LineEvent[] = [];
    if (this.overflowed) return out;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      if (this.size + (end - start) > this.maxLineBytes) {
        this.overflowed = true;
        this.parts = [];
        out.push({ kind: 'too_long' });
        return out;
      }
      if (nl < 0) {
        if (end > start) {
          this.parts.push(chunk.subarray(start, end));
          this.size += end - start;
        }
        return out;
      }
      this.parts.push(chunk.subarray(start, end));
      const text = Buffer.concat(this.parts).toString('utf8');
      this.parts = [];
      this.size = 0;
      if (text.trim() !== '') out.push({ kind: 'line', text });
      start = nl + 1;
    }
  }

  /** What is left at EOF without a newline: the control panel may close right after writing. */
  finish(): LineEvent[] {
    if (this.overflowed || this.size === 0) return [];
    const text = Buffer.concat(this.parts).toString('utf8');
    this.parts = [];
    this.size = 0;
    return text.trim() === '' ? [] : [{ kind: 'line', text }];
  }
}
