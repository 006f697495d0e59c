/** HTTP as bytes on a socket: for requests no HTTP client would send (smuggling, odd targets). */
import net from "node:net";

export interface RawResponse {
  readonly status: number;
  /** Header names lower case; repeated headers joined with ", ". */
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Everything the server sent, as text. */
  readonly text: string;
}

/**
 * Writes `request` (CRLF line ends are up to the caller) to `url`'s host and
 * port and reads until the server closes or `idleMs` passes without data.
 * Returns the first response; null when nothing came back.
 */
export function rawRequest(
  url: string,
  request: string,
  idleMs = 500,
): Promise<RawResponse | null> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let text = "";
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parse(text));
    };
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(done, idleMs);
    };
    socket.on("connect", () => {
      socket.write(request);
      idle();
    });
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1");
      idle();
    });
    socket.on("end", done);
    socket.on("error", (error) => (text ? done() : reject(error)));
  });
}

function parse(text: string): RawResponse | null {
  const head = text.indexOf("\r\n\r\n");
  if (!text.startsWith("HTTP/1.1 ") || head === -1) return null;
  const lines = text.slice(0, head).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] ? `${headers[name]}, ${value}` : value;
  }
  let body = text.slice(head + 4);
  const length = Number(headers["content-length"]);
  if (Number.isInteger(length)) body = body.slice(0, length);
  return { status: Number(lines[0]?.split(" ")[1]), headers, body, text };
}
