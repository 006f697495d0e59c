// Bundles the server and CLI into dist/main.js and copies the SQL
// migrations next to it (see bundle-server.mjs).
import { rm } from "node:fs/promises";
import { bundleServer } from "./bundle-server.mjs";

await rm("dist", { recursive: true, force: true });
await bundleServer("dist");
