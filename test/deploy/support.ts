/**
 * What the deploy tests share: the Dockerfile read as Docker reads it (stages, exec-form arrays, the effective start
 * command), .dockerignore matching with Docker's rules, and the names and ports the settings table (plus DESIGN.md for
 * modes whose settings have not landed yet) allows in compose.yml and deploy/.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { AVAILABLE_MODES, PRESENCE_ALIASES, SETTINGS, type Mode } from '../../src/config/settings.js';

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const readRepoFile = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

// ---------------------------------------------------------------------------------------------------------------
// Settings: names and default ports
// ---------------------------------------------------------------------------------------------------------------

/**
 * Settings of the modes that are still being written, copied from DESIGN.md §5-§7. They are used only while a mode has no
 * entry in SETTINGS (its table in src/config/modes/*.ts is empty); once it lands, SETTINGS alone decides.
 */
export const PENDING_SETTINGS: Record<Exclude<Mode, 'groups'>, readonly string[]> = {
  mux: [
    'LISTEN_PORT', 'TARGET', 'PROTOCOL', 'UPSTREAM_TIMEOUT_MS', 'REQUEST_DEADLINE_MS', 'CONNECT_TIMEOUT_MS', 'CONNECT_DELAY_MS',
    'REQUEST_GAP_MS', 'MAX_INFLIGHT', 'CLIENT_QUEUE', 'UPSTREAM_IDLE_CLOSE_MS', 'UPSTREAM_MAX_TIMEOUTS', 'READ_ONLY',
    'WRITE_ALLOW', 'UNIT_MAP', 'COALESCE', 'CACHE_TTL_MS', 'MAX_HEADER_BYTES',
  ],
  share: ['LISTEN_PORT', 'LISTEN_PORT_RO', 'UPSTREAM', 'REPLAY_BYTES', 'UPSTREAM_LOSS', 'SLOW_CLIENT'],
  relay: ['RELAY_PORT', 'PUBLIC_PORTS', 'PUBLIC_HOST', 'AUTH_SECRET', 'AUTH', 'RELAY_LEGACY', 'LEASE_TTL_MS', 'VISITOR_WAIT_MS', 'STREAM_WINDOW_BYTES'],
  agent: ['RELAY', 'SERVICE', 'REQUEST_PORT', 'AUTH_SECRET', 'STREAM_WINDOW_BYTES'],
};

/** Default ports of every mode (DESIGN §2, §4-§7): what the image must EXPOSE. `protocol/port` or `protocol/first-last`. */
export const DESIGN_DEFAULT_PORTS: Record<Mode | 'sidecar', readonly string[]> = {
  sidecar: ['tcp/9502'],
  groups: ['tcp/7100', 'udp/7100'],
  mux: ['tcp/5020'],
  share: ['tcp/3333'],
  relay: ['tcp/8000', 'tcp/8001-8050'],
  agent: [],
};

function modeHasSettings(mode: Mode): boolean {
  return SETTINGS.some((s) => s.scope !== 'common' && s.scope.includes(mode));
}

/** Every environment name switchboard understands in `mode` (settings, aliases, presence switches). */
export function knownEnvNames(mode: Mode): Set<string> {
  const names = new Set<string>(Object.keys(PRESENCE_ALIASES));
  for (const setting of SETTINGS) {
    if (setting.scope !== 'common' && !setting.scope.includes(mode)) continue;
    names.add(setting.name);
    for (const alias of setting.aliases ?? []) names.add(alias);
  }
  if (mode !== 'groups' && !modeHasSettings(mode)) for (const name of PENDING_SETTINGS[mode]) names.add(name);
  return names;
}

/** The default of a setting in `mode` as text (LISTEN_PORT has one per mode); undefined when required or not landed yet. */
export function settingDefault(name: string, mode: Mode): string | undefined {
  return SETTINGS.find((s) => s.name === name && (s.scope === 'common' || s.scope.includes(mode)))?.default;
}

/** `protocol/port` entries of the settings table's port defaults (TCP_PORT, UDP_PORT, HTTP_PORT, and later modes' ports). */
export function settingsDefaultPorts(): string[] {
  const ports: string[] = [];
  for (const setting of SETTINGS) {
    // A default of 0 (the agent's REQUEST_PORT: any port the relay picks) names no port to expose.
    if (!/_PORTS?$/.test(setting.name) || setting.default === undefined || !/^[1-9]\d*(-\d+)?$/.test(setting.default)) continue;
    ports.push(`${setting.name.startsWith('UDP_') ? 'udp' : 'tcp'}/${setting.default}`);
  }
  return ports;
}

export { AVAILABLE_MODES };

// ---------------------------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------------------------

export interface Stage {
  name: string | undefined;
  image: string;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  args: Map<string, string>;
  stages: Stage[];
  final: Stage;
}

/** Stages with their instructions; `${ARG}` in FROM resolved from the global ARG defaults. */
export function parseDockerfile(text: string): ParsedDockerfile {
  const dockerfile = DockerfileParser.parse(text);
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword();
    const content = instruction.getArgumentsContent() ?? '';
    if (keyword === 'ARG' && stages.length === 0) {
      const [name, value = ''] = content.split('=', 2) as [string, string?];
      args.set(name.trim(), value.trim());
    } else if (keyword === 'FROM') {
      const [image = '', as, name] = content.split(/\s+/);
      const resolved = image.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a?: string, b?: string) => args.get((a ?? b)!) ?? '');
      stages.push({ name: as?.toUpperCase() === 'AS' ? name : undefined, image: resolved, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  if (stages.length === 0) throw new Error('the Dockerfile has no FROM');
  return { args, stages, final: stages.at(-1)! };
}

export function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.getKeyword() === keyword);
}

export function flagsOf(instruction: Instruction): Map<string, string> {
  const flags = (instruction as unknown as { getFlags?: () => Array<{ getName(): string; getValue(): string | null }> }).getFlags?.() ?? [];
  return new Map(flags.map((f) => [f.getName(), f.getValue() ?? '']));
}

/** An exec-form (JSON array) argument list; throws for shell form, which would start a shell (dash drops dotted names). */
export function execForm(content: string, what: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    throw new Error(`${what} is not in exec form (a JSON array): ${content}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((part) => typeof part === 'string')) throw new Error(`${what} is not a JSON array of strings`);
  return parsed as string[];
}

/**
 * The command a container runs: ENTRYPOINT followed by CMD, or by the arguments given after the image name (they replace
 * CMD). Only the final stage's own ENTRYPOINT/CMD count: this Dockerfile must not inherit the base image's.
 */
export function startCommand(parsed: ParsedDockerfile, runArgs?: readonly string[]): string[] {
  const entrypoint = instructionsOf(parsed.final, 'ENTRYPOINT').at(-1);
  const cmd = instructionsOf(parsed.final, 'CMD').at(-1);
  const entry = entrypoint ? execForm(entrypoint.getArgumentsContent() ?? '', 'ENTRYPOINT') : [];
  const command = runArgs ?? (cmd ? execForm(cmd.getArgumentsContent() ?? '', 'CMD') : []);
  return [...entry, ...command];
}

/** The HEALTHCHECK's command (exec form after `CMD`) and its options. */
export function healthcheck(parsed: ParsedDockerfile): { command: string[]; options: Map<string, string> } {
  const instruction = instructionsOf(parsed.final, 'HEALTHCHECK').at(-1);
  if (!instruction) throw new Error('the final stage has no HEALTHCHECK');
  const content = (instruction.getArgumentsContent() ?? '').replace(/^(--\S+\s+)*/, '');
  const match = /^CMD\s+([\s\S]*)$/.exec(content);
  if (!match) throw new Error(`HEALTHCHECK is not "CMD [...]": ${content}`);
  return { command: execForm(match[1]!, 'HEALTHCHECK CMD'), options: flagsOf(instruction) };
}

/** EXPOSE entries as `protocol/port` or `protocol/first-last`. */
export function exposedPorts(parsed: ParsedDockerfile): string[] {
  return instructionsOf(parsed.final, 'EXPOSE')
    .flatMap((i) => (i.getArgumentsContent() ?? '').split(/\s+/))
    .filter(Boolean)
    .map((entry) => {
      const [port, protocol = 'tcp'] = entry.split('/') as [string, string?];
      return `${protocol.toLowerCase()}/${port}`;
    });
}

/** WORKDIR of a stage at its end (absolute). */
export function workdirOf(stage: Stage): string {
  return instructionsOf(stage, 'WORKDIR').at(-1)?.getArgumentsContent() ?? '/';
}

// ---------------------------------------------------------------------------------------------------------------
// .dockerignore, with Docker's rules (moby/patternmatcher): patterns are cleaned paths relative to the context; `*` and
// `?` do not cross `/`, `**` crosses any number of directories; a pattern also matches everything under a directory it
// matches; the last matching pattern wins and `!` re-includes.
// ---------------------------------------------------------------------------------------------------------------

interface IgnorePattern {
  exclusion: boolean;
  text: string;
  regexp: RegExp;
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      i++;
      if (glob[i + 1] === '/') {
        i++;
        source += '(?:.*/)?';
      } else source += '.*';
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      source += end > i ? glob.slice(i, end + 1).replace(/^\[!/, '[^') : '\\[';
      if (end > i) i = end;
    } else if (c === '\\' && i + 1 < glob.length) source += `\\${glob[++i]!}`;
    else source += c.replace(/[.+^${}()|\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

export function parseDockerignore(text: string): IgnorePattern[] {
  const patterns: IgnorePattern[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const exclusion = line.startsWith('!');
    if (exclusion) line = line.slice(1).trim();
    line = line.replace(/^\/+/, '').replace(/\/+$/, '').replace(/\/\.\//g, '/');
    if (line === '' || line === '.') continue;
    patterns.push({ exclusion, text: line, regexp: globToRegExp(line) });
  }
  return patterns;
}

/** True when `path` (relative, `/`-separated) is left out of the build context. */
export function isIgnored(patterns: readonly IgnorePattern[], path: string): boolean {
  const parents = path.split('/').slice(0, -1);
  let matched = false;
  for (const pattern of patterns) {
    if (pattern.exclusion !== matched) continue;
    let match = pattern.regexp.test(path);
    for (let i = 1; !match && i <= parents.length; i++) match = pattern.regexp.test(parents.slice(0, i).join('/'));
    if (match) matched = !pattern.exclusion;
  }
  return matched;
}

/** Files of the build context (relative paths), walking only into directories a `!` pattern could re-include from. */
export function contextFiles(root: string, patterns: readonly IgnorePattern[]): string[] {
  const files: string[] = [];
  const reincludes = patterns.filter((p) => p.exclusion);
  const walk = (relative: string): void => {
    for (const entry of readdirSync(join(root, relative), { withFileTypes: true })) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      const ignored = isIgnored(patterns, path);
      if (entry.isDirectory()) {
        // An ignored directory is still entered when a re-include pattern may match below it (Docker does the same).
        const mayReinclude = reincludes.some((p) => /[*?[\\]/.test(p.text) || p.text.startsWith(`${path}/`));
        if (!ignored || mayReinclude) walk(path);
      } else if (!ignored) files.push(path);
    }
  };
  walk('');
  return files.sort();
}

// ---------------------------------------------------------------------------------------------------------------
// .env.example, the file users copy: per mode, the names it lists (with their defaults) and the aliases it mentions.
// ---------------------------------------------------------------------------------------------------------------

export function envExample(mode: Mode): { defaults: Map<string, string>; aliases: Set<string> } {
  const defaults = new Map<string, string>();
  const aliases = new Set<string>();
  let inMode = false;
  for (const line of readRepoFile('.env.example').split('\n')) {
    const header = /^# --- (.*) ---$/.exec(line);
    if (header) {
      inMode = header[1] === 'every mode' || (header[1]!.startsWith('MODE=') && header[1]!.slice(5).split(/,\s*/).includes(mode));
      continue;
    }
    if (!inMode) continue;
    const setting = /^# ([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (setting) defaults.set(setting[1]!, setting[2]!);
    const alias = /\(alias: ([^)]*)\)/.exec(line);
    if (alias) for (const name of alias[1]!.split(/,\s*/)) aliases.add(name.trim());
    for (const name of Object.keys(PRESENCE_ALIASES)) if (line.includes(name)) aliases.add(name);
  }
  return { defaults, aliases };
}

/** Names (of `mode`) that .env.example does not list as a setting or alias. */
export function missingFromEnvExample(names: Iterable<string>, mode: Mode): string[] {
  const { defaults, aliases } = envExample(mode);
  return [...names].filter((name) => !defaults.has(name) && !aliases.has(name));
}

/** `protocol/port` defaults .env.example shows for port settings (every mode). */
export function envExampleDefaultPorts(): string[] {
  const ports = new Set<string>();
  for (const mode of ['groups', 'mux', 'share', 'relay', 'agent'] as const) {
    for (const [name, value] of envExample(mode).defaults) {
      if (/_PORTS?$/.test(name) && /^[1-9]\d*(-\d+)?$/.test(value)) ports.add(`${name.startsWith('UDP_') ? 'udp' : 'tcp'}/${value}`);
    }
  }
  return [...ports];
}
