/**
 * The settings table rendered for people: .env.example and README's tables. Kept beside the schema so that the documents
 * are produced from it (scripts/settings-docs.ts) and checked against it (test/config/docs.test.ts).
 */
import { SETTINGS, type Mode, type SettingDefinition } from './settings.js';

const shownDefault = (s: SettingDefinition) => (s.name === 'MODE' ? 'inferred' : s.default === '' ? 'empty' : s.default ?? 'required');

export function renderEnvExample(): string {
  const lines = [
    '# switchboard: every setting with its default. Nothing here is active: uncomment what you change.',
    '# Docker: docker run --env-file .env … ; compose: env_file: .env ; shell: set -a; . ./.env; set +a',
    '# SocketForwarder names (socketforwarder.tcp.port, tcp.preconfig_addresses, …) are accepted as aliases; see README.',
    '',
  ];
  let section = '';
  for (const setting of SETTINGS) {
    const scope = setting.scope === 'common' ? 'common' : setting.scope.join(', ');
    if (scope !== section) {
      section = scope;
      lines.push(`# --- ${scope === 'common' ? 'every mode' : `MODE=${scope}`} ---`);
    }
    const aliases = setting.aliases?.length ? ` (alias: ${setting.aliases.join(', ')})` : '';
    lines.push(`# ${setting.doc}${aliases}`);
    lines.push(`# ${setting.name}=${setting.name === 'MODE' ? '' : (setting.default ?? '')}`);
  }
  return lines.join('\n') + '\n';
}

/** A markdown table of the settings of one scope ('common' or a mode). */
export function renderReadmeTable(scope: 'common' | Mode): string {
  const rows = SETTINGS.filter((s) => (scope === 'common' ? s.scope === 'common' : s.scope !== 'common' && s.scope.includes(scope)));
  const escape = (text: string) => text.replaceAll('|', '\\|');
  return [
    '| name | default | meaning |',
    '|---|---|---|',
    ...rows.map((s) => {
      const aliases = s.aliases?.length ? ` Alias: ${s.aliases.map((a) => `\`${a}\``).join(', ')}.` : '';
      return `| \`${s.name}\` | \`${escape(shownDefault(s))}\` | ${escape(s.doc)}.${aliases} |`;
    }),
  ].join('\n');
}
