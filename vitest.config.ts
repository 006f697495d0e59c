import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One embedded database per worker, shared by its test files (each gets a
    // fresh schema): files in a worker share the module graph.
    pool: "forks",
    isolate: false,
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
