import net from "node:net";

/** A local port that was free a moment ago: nothing listens there until someone takes it. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * A loopback port that refuses connections, for an upstream or a server
 * that is down. Port 2 is below the ephemeral range `freePort` draws from,
 * no test binds it, and fetch accepts it (port 1 is on fetch's list of
 * blocked ports); a port that was free a moment ago may meanwhile be taken
 * by another test worker's server, which then answers instead.
 */
export const REFUSED_PORT = 2;
