/**
 * README's "Running it in a container" section: it shows docker build, docker run with an example per mode (SocketForwarder's
 * dotted names through -e included), compose and Kubernetes, names the files that exist, and every `-e NAME=` in it is a
 * setting or alias switchboard knows.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MODES } from '../../src/config/settings.js';
import { knownEnvNames, readRepoFile, ROOT } from './support.js';

const readme = readRepoFile('README.md');
const start = readme.indexOf('## Running it in a container\n');
const section = readme.slice(start, readme.indexOf('\n## ', start + 1));

describe("README's container section", () => {
  it('is written, with docker build, docker run, compose and Kubernetes commands', () => {
    assert.ok(start >= 0);
    assert.doesNotMatch(section, /Not written yet/);
    for (const command of ['docker build -t switchboard .', 'docker run --rm -p 7100:7100 -p 7100:7100/udp -p 9502:9502 switchboard', 'docker compose up', 'kubectl apply -f deploy/']) {
      assert.ok(section.includes(command), command);
    }
    for (const file of readdirSync(`${ROOT}/deploy`)) assert.ok(section.includes(file), `names deploy/${file}`);
    assert.match(section, /server -t \S+ -p modbus -l \d+/, "tcp-multiplexer's command line");
    assert.match(section, /-e socketforwarder\.tcp\.port=/, 'a dotted SocketForwarder name through -e');
  });

  it('uses only known settings in its -e examples, and has one for every mode', () => {
    const known = new Set(MODES.flatMap((mode) => [...knownEnvNames(mode)]));
    const names = [...section.matchAll(/-e ([A-Za-z_.]+)=/g)].map((m) => m[1]!);
    assert.ok(names.length > 0);
    for (const name of names) assert.ok(known.has(name), `-e ${name} is a setting or alias`);
    for (const selector of ['PREFIX', 'TARGET', 'UPSTREAM', 'MODE=relay', 'RELAY']) assert.ok(section.includes(`-e ${selector}`), `an example with -e ${selector}`);
  });
});
