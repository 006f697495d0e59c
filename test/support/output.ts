import { Writable } from "node:stream";

/** A stream that keeps what is written to it, for a CLI's stdout or stderr. */
export function captureOutput(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return {
    stream: new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk));
        done();
      },
    }),
    text: () => chunks.join(""),
  };
}
