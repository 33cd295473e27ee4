// Generates TypeScript types from a live gateway's /openapi.json with openapi-typescript,
// type-checks scenario.ts against them with `tsc --noEmit --strict`, compiles it to
// JavaScript and runs it with node against the same gateway. Everything happens in a
// temporary directory; nothing is written into the checkout.
//
// Usage: FERRYMQ_TEST_TS_NODE_DIR=DIR node tests/ts-client/run.mjs BASE_URL TOKEN
// where DIR holds this directory's package.json and package-lock.json installed with
// `npm ci` (scripts/test does it under ~/.cache/ferrymq/node/).

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [base, token] = process.argv.slice(2);
const nodeDir = process.env.FERRYMQ_TEST_TS_NODE_DIR;
if (!base || !token || !nodeDir) {
  console.error("usage: FERRYMQ_TEST_TS_NODE_DIR=DIR node run.mjs BASE_URL TOKEN");
  process.exit(2);
}
const modules = join(nodeDir, "node_modules");

/** Runs `node args…` in `cwd`; on failure prints `what` with the output and exits 1. */
function node(what, cwd, args) {
  const started = Date.now();
  const r = spawnSync(process.execPath, args, { cwd, encoding: "utf8" });
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
  if (r.status !== 0) {
    console.error(`ts-client: ${what} failed (${r.error ?? `exit ${r.status}`}):\n${output}`);
    process.exitCode = 1;
    throw new Error(what);
  }
  console.log(`ts-client: ${what} ok (${Date.now() - started} ms)${output ? `\n${output}` : ""}`);
}

const tmp = mkdtempSync(join(tmpdir(), "ferrymq-ts-client-"));
try {
  symlinkSync(modules, join(tmp, "node_modules"), "dir");
  writeFileSync(join(tmp, "package.json"), JSON.stringify({ type: "module" }));
  copyFileSync(join(here, "scenario.ts"), join(tmp, "scenario.ts"));
  writeFileSync(
    join(tmp, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noUnusedLocals: true,
        target: "es2022",
        module: "nodenext",
        moduleResolution: "nodenext",
        lib: ["es2022", "dom"],
        types: [],
        // node_modules' declarations are the packages' business; schema.ts (generated) and
        // scenario.ts are checked.
        skipLibCheck: true,
        outDir: "out",
      },
      files: ["scenario.ts"],
    }),
  );
  // The types, from the document the gateway serves (a .ts file, so tsc checks it too).
  node("openapi-typescript", tmp, [
    join(modules, "openapi-typescript", "bin", "cli.js"),
    `${base}/openapi.json`,
    "--output",
    "schema.ts",
  ]);
  const tsc = join(modules, "typescript", "bin", "tsc");
  node("tsc --noEmit --strict (scenario.ts against the generated types)", tmp, [
    tsc,
    "--noEmit",
    "--strict",
    "-p",
    "tsconfig.json",
  ]);
  node("tsc (compile to JavaScript)", tmp, [tsc, "-p", "tsconfig.json"]);
  node("scenario", tmp, [join(tmp, "out", "scenario.js"), base, token]);
} catch (e) {
  if (process.exitCode !== 1) {
    console.error(`ts-client: ${e.stack ?? e}`);
    process.exitCode = 1;
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
