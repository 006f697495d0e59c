/**
 * A TCP proxy in front of a server (Postgres), to take it away and bring it
 * back: `cut()` drops every connection and refuses new ones, `restore()`
 * accepts again. The network edge fails; nothing of hallpass is stubbed.
 */
import net from "node:net";
import type { Db } from "#src/store/db.js";
import { openPostgres } from "#src/store/postgres.js";

export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  readonly port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let open = true;
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      open = true;
    },
    async close() {
      open = false;
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A pool on `schema` of TEST_DATABASE_URL's Postgres that reaches it through
 * a `TcpProxy` (`cable`): `cable.cut()` takes the database away from this
 * pool alone.
 */
export async function postgresBehindCable(
  databaseUrl: string,
  schema: string,
): Promise<{ cable: TcpProxy; behind: Db }> {
  const url = new URL(databaseUrl);
  const cable = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  url.hostname = "127.0.0.1";
  url.port = String(cable.port);
  const behind = openPostgres(url.toString(), { searchPath: schema, applicationName: schema });
  return { cable, behind };
}
