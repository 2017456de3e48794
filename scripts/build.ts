// npm run build: the shipped artefact. Type-checks src (tsc -p tsconfig.build.json, no output),
// then bundles src/server.ts and the dependencies it uses into ONE ES module, dist/server.js
// (esbuild), so the image needs no node_modules: node loads ~1.5 MB of JavaScript it runs instead
// of resolving and compiling hundreds of files. The license texts of every bundled package go to
// dist/licenses/<package>/ (their notices must ship with their code).
//
// Three modules of @kubernetes/client-node are replaced by stubs that throw if ever called: its
// generated API clients (./gen/index.js: 60 MB of models and serializers, 70% of its memory),
// their middleware, and undici (its fetch dispatcher). KubeConfig imports them only for
// makeApiClient() and applySecurityAuthentication(), i.e. for the generated clients, which we do
// not use (src/kube/client.ts). Everything KubeConfig does for us stays real: kubeconfig files,
// in-cluster config, token files, exec/OIDC/Azure/GCP auth, CA and client certificates, and the
// proxy agents of applyToHTTPSOptions (hpagent, socks-proxy-agent). Also stubbed: zod's other
// locales (English is its default and stays) and fastify's inject() (tests run the sources).
//
// The bundle's first line tells V8 to favour memory over peak speed: --optimize-for-size (smaller
// young generation, a memory reducer that gives pages back at idle), 1 MiB semi-spaces, and no
// optimizing tiers (--no-maglev --no-turbofan: their code in the node binary is never paged in,
// ~5 MiB; our work is a few ms of I/O per failover, run by Ignition and Sparkplug). Set from inside
// because the image's entrypoint is plain `node dist/server.js`. docs/benchmarks.md, footprint.
//
//   node scripts/build.ts [--no-typecheck] [--metafile FILE]
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { 'no-typecheck': { type: 'boolean', default: false }, metafile: { type: 'string' } } });

/** What the stubs stand for; importing them is harmless, calling them says why it fails. */
const STUBS: { module: RegExp; importer?: RegExp; contents: string }[] = [
  {
    module: /^\.\/gen\/index\.js$/,
    importer: /@kubernetes[/\\]client-node[/\\]dist[/\\]config\.js$/,
    contents: `const no = () => { throw new Error('sentinel-switch bundle: client-node generated API clients are not included (src/kube/client.ts makes the requests)'); };
export const createConfiguration = no;
export class ServerConfiguration { constructor() { no(); } }`,
  },
  {
    module: /^\.\/middleware\.js$/,
    importer: /@kubernetes[/\\]client-node[/\\]dist[/\\]config\.js$/,
    contents: `export const setHeaderMiddleware = () => { throw new Error('sentinel-switch bundle: client-node middleware is not included'); };`,
  },
  {
    module: /^undici$/,
    importer: /@kubernetes[/\\]client-node[/\\]dist[/\\]/,
    contents: `const no = () => { throw new Error('sentinel-switch bundle: undici is not included (KubeConfig.createDispatcher is for the generated API clients)'); };
export class Agent { constructor() { no(); } }
export class ProxyAgent { constructor() { no(); } }`,
  },
  // zod's namespace object re-exports every locale (45 of them, ~40% of zod's code) and so
  // defeats tree shaking; the service speaks English (zod's default, which stays).
  {
    module: /^\.\.\/locales\/index\.js$/,
    importer: /[/\\]zod[/\\]v4[/\\](classic|core)[/\\][^/\\]+\.js$/,
    contents: `export { default as en } from 'zod/v4/locales/en.js';`,
  },
  // Fastify's inject() (tests only) and its JSON-schema compilers: our routes validate with zod
  // and declare no JSON schema, so fastify never compiles one at runtime.
  {
    module: /^light-my-request$/,
    importer: /[/\\]fastify[/\\]/,
    contents: `module.exports = function inject() { throw new Error('sentinel-switch bundle: fastify inject() is not included (tests run the sources)'); };`,
  },
];

const stubs: Plugin = {
  name: 'client-node-stubs',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (a) => {
      const i = STUBS.findIndex((s) => s.module.test(a.path) && (!s.importer || s.importer.test(a.importer)));
      return i < 0 ? undefined : { path: String(i), namespace: 'stub' };
    });
    b.onLoad({ filter: /.*/, namespace: 'stub' }, (a) => ({ contents: STUBS[Number(a.path)]!.contents, loader: 'js', resolveDir: root }));
  },
};

const t0 = performance.now();
if (!values['no-typecheck']) {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  // The service, and the `sentinel-switch` command (status, check) that bin/sentinel-switch loads.
  entryPoints: ['src/server.ts', 'src/cli.ts'],
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  // CommonJS dependencies (ioredis, pino, ...) call require() for node's own modules.
  banner: {
    js: [
      "import { createRequire as __ssCreateRequire } from 'node:module'; const require = __ssCreateRequire(import.meta.url);",
      "import { setFlagsFromString as __ssV8Flags } from 'node:v8'; __ssV8Flags('--optimize-for-size'); __ssV8Flags('--max-semi-space-size=1'); __ssV8Flags('--no-turbofan'); __ssV8Flags('--no-maglev');",
    ].join('\n'),
  },
  legalComments: 'none', // the packages' license files are copied below, whole
  // Minified: node keeps every script's source in memory, and one non-ASCII character in any
  // comment makes V8 keep the whole bundle as UTF-16 (2 bytes a character). keepNames: class and
  // function names stay (error names, logs).
  minify: true,
  keepNames: true,
  charset: 'ascii',
  metafile: true,
  logLevel: 'warning',
  plugins: [stubs],
});

// The license files of each package with code in the bundle.
const packages = new Set<string>();
for (const input of ['dist/server.js', 'dist/cli.js'].flatMap((out) => Object.keys(result.metafile.outputs[out]!.inputs))) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) packages.add(m[1]!);
}
const licensed: string[] = [];
for (const pkg of [...packages].sort()) {
  const name = pkg.slice(pkg.lastIndexOf('node_modules/') + 'node_modules/'.length);
  const files = readdirSync(join(root, pkg)).filter((f) => /^(licen[cs]e|notice|copying|authors)/i.test(f));
  const to = join(dist, 'licenses', name);
  mkdirSync(to, { recursive: true });
  for (const f of files) copyFileSync(join(root, pkg, f), join(to, f));
  if (!files.length) {
    // A package that ships no license file (abstract-logging): what its package.json declares.
    const meta = JSON.parse(readFileSync(join(root, pkg, 'package.json'), 'utf8')) as { name: string; version: string; license?: string; author?: unknown; homepage?: string };
    if (!meta.license) throw new Error(`${name} is bundled but declares no license and has no license file in ${pkg}`);
    writeFileSync(join(to, 'LICENSE'), `${meta.name} ${meta.version}: ${meta.license} (declared in its package.json; the package ships no license file)\nauthor: ${typeof meta.author === 'string' ? meta.author : JSON.stringify(meta.author ?? '')}\n${meta.homepage ?? ''}\n`);
  }
  licensed.push(name);
}
writeFileSync(join(dist, 'licenses', 'README'), `Third-party code bundled into server.js and cli.js, each package's license files in its folder:\n${licensed.map((n) => `  ${n}`).join('\n')}\n`);
if (values.metafile) writeFileSync(values.metafile, JSON.stringify(result.metafile));
const bytes = result.metafile.outputs['dist/server.js']!.bytes;
process.stdout.write(`built ${relative(root, join(dist, 'server.js'))} (${(bytes / 1e6).toFixed(2)} MB, ${licensed.length} packages) in ${Math.round(performance.now() - t0)} ms\n`);
for (const f of ['server.js', 'cli.js']) if (!existsSync(join(dist, f))) throw new Error(`no dist/${f}`);
