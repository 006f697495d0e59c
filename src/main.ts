#!/usr/bin/env node
import { existsSync } from "node:fs";
import { runCli } from "#src/cli/run.js";

// As Probot does: a .env file in the working directory fills in unset variables.
if (existsSync(".env")) process.loadEnvFile(".env");

process.exitCode = await runCli(process.argv.slice(2));
