import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";

/** How a relayed request ended. */
export interface Relayed {
  /** The upstream's status, once its headers came; null when none came. */
  readonly status: number | null;
  readonly bytesOut: number;
  /** Why it did not complete: the upstream's error, or `ClientClosed`. */
  readonly error: Error | null;
}

/** The caller went away before the answer was complete. */
export class ClientClosed extends Error {
  constructor() {
    super("the client closed the connection");
    this.name = "ClientClosed";
  }
}

/**
 * Sends one request upstream through `dispatcher` (an undici pool) and
 * streams the answer into `res` as it arrives, with backpressure both ways
 * (a slow caller pauses the upstream; a slow upstream body is never
 * buffered). The answer's headers go through `headers` first. Resolves when
 * the answer has been written, or with the error that ended it; never
 * rejects. If the caller goes away, the upstream request is aborted.
 *
 * Undici's dispatch API, rather than `request()` and a stream pipeline:
 * no intermediate stream or abort signal per request.
 */
export function relay(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  res: ServerResponse,
  headers: (upstream: IncomingHttpHeaders) => OutgoingHttpHeaders,
  onResponseStart?: () => void,
): Promise<Relayed> {
  return new Promise((resolve) => {
    let controller: Dispatcher.DispatchController | null = null;
    let status: number | null = null;
    let bytesOut = 0;
    let settled = false;
    const settle = (error: Error | null) => {
      if (settled) return;
      settled = true;
      res.off("close", onClose);
      resolve({ status, bytesOut, error });
    };
    const onDrain = () => controller?.resume();
    const onClose = () => {
      if (res.writableFinished) return;
      const closed = new ClientClosed();
      if (controller && !controller.aborted) controller.abort(closed);
      settle(closed);
    };
    res.on("close", onClose);
    dispatcher.dispatch(options, {
      onRequestStart(c) {
        controller = c;
        if (res.destroyed) c.abort(new ClientClosed());
      },
      onResponseStart(_c, statusCode, upstreamHeaders) {
        // 1xx answers other than a switch of protocols are informational only.
        if (statusCode < 200) return;
        status = statusCode;
        onResponseStart?.();
        res.writeHead(statusCode, headers(upstreamHeaders));
      },
      onResponseData(c, chunk) {
        bytesOut += chunk.length;
        if (!res.write(chunk)) {
          c.pause();
          res.once("drain", onDrain);
        }
      },
      onResponseEnd() {
        res.end(() => settle(null));
      },
      onResponseError(_c, error) {
        settle(error);
      },
    });
  });
}
