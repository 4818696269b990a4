#!/usr/bin/env node
// The `quantlab` command: runs the TypeScript CLI (src/cli/main.ts) through tsx, from any working directory.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

// Paths are resolved from this file, not the working directory, so `quantlab` works from anywhere
// and a tsconfig.json in the user's directory does not change how the CLI is compiled.
register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
const { main } = await import(new URL('../src/cli/main.ts', import.meta.url).href);
const code = await main(process.argv.slice(2));
// Dawn can keep native handles alive after its context is disposed: flush both streams, then exit explicitly.
const flushed = (stream) => new Promise((resolve) => stream.write('', resolve));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
