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

/** A JSON text's tokens: strings, the punctuation, and the other literals. */
const TOKEN = /"(?:[^"\\]|\\.)*"|[{}[\]:,]|[^\s{}[\]:,"]+/g;

/**
 * The keys a JSON text repeats within one object, at any depth, as paths
 * (`req.headers.host`). `JSON.parse` keeps the last of repeated keys
 * without a word; log collectors differ in which one they keep.
 */
export function duplicateKeys(json: string): string[] {
  const found: string[] = [];
  // One frame per open object or array: the keys seen, and where it is.
  const stack: Array<{ keys: Set<string> | null; path: string; key: string | null }> = [];
  let expectKey = false;
  for (const [token] of json.matchAll(TOKEN)) {
    const top = stack.at(-1);
    if (token === "{" || token === "[") {
      const path = top ? [top.path, top.key].filter(Boolean).join(".") : "";
      stack.push({ keys: token === "{" ? new Set() : null, path, key: null });
      expectKey = token === "{";
    } else if (token === "}" || token === "]") stack.pop();
    else if (token === ",") expectKey = top?.keys != null;
    else if (expectKey && top?.keys) {
      const key = JSON.parse(token) as string;
      if (top.keys.has(key)) found.push([top.path, key].filter(Boolean).join("."));
      top.keys.add(key);
      top.key = key;
      expectKey = false;
    }
  }
  return found;
}
