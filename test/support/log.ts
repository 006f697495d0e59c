import { Writable } from "node:stream";
import { createLogger, type Logger } from "#src/log.js";

/** A real logger whose JSON lines are kept in memory, to assert on what was logged. */
export function captureLogger(level: "debug" | "info" | "silent" = "debug"): {
  log: Logger;
  lines: () => Record<string, unknown>[];
  text: () => string;
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const log = createLogger(level, sink);
  const text = () => chunks.join("");
  return {
    log,
    text,
    lines: () =>
      text()
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
