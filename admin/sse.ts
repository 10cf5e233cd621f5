/**
 * An incremental parser for `text/event-stream` (the WHATWG "server-sent
 * events" format): lines end in LF, CR or CRLF; `event:` and `data:` fields
 * accumulate until a blank line dispatches the message; lines starting with
 * `:` are comments (our keep-alives); `retry:` carries a reconnect hint.
 */

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** Lines longer than this are dropped (a misbehaving peer cannot grow our buffer without bound). */
export const MAX_SSE_LINE = 64 * 1024;

export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  /** Last `retry:` value seen (ms), if any. */
  retryMs: number | null = null;

  /** Feeds decoded text; returns the messages completed by it. */
  push(text: string): SseMessage[] {
    this.buf += text;
    const out: SseMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      // A CR at the very end may be the first half of CRLF: wait for more.
      if (c === 13 && i === this.buf.length - 1) break;
      this.line(this.buf.slice(start, i), out);
      if (c === 13 && this.buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length > MAX_SSE_LINE) this.buf = '';
    return out;
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === '') {
      if (this.data.length > 0) {
        const m: SseMessage = { event: this.event || 'message', data: this.data.join('\n') };
        if (this.id !== undefined) m.id = this.id;
        out.push(m);
      }
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
  }
}
