/**
 * groups mode (DESIGN §4): TCP groups and one UDP group, replacing Kilemonn/SocketForwarder.
 */
import type { GroupsModeConfig } from '../../config/load.js';
import type { Engine, EngineContext } from '../engine.js';
import { TcpGroups } from './tcp-groups.js';
import { UdpGroup } from './udp-group.js';

export class GroupsEngine implements Engine {
  private readonly tcp: TcpGroups;
  private readonly udp: UdpGroup | undefined;
  private started = false;
  private draining = false;

  constructor(context: EngineContext & { config: GroupsModeConfig }) {
    const { config, log, metrics, budget } = context;
    this.tcp = new TcpGroups({ common: config, groups: config.groups, log, metrics, budget });
    if (config.groups.udpPort !== null) this.udp = new UdpGroup({ common: config, groups: config.groups, log, metrics });
  }

  get ready(): boolean {
    return this.started && !this.draining;
  }

  async start(): Promise<void> {
    await this.tcp.start();
    await this.udp?.start();
    this.started = true;
  }

  listeners() {
    return [...this.tcp.listenerInfo(), ...(this.udp ? [this.udp.listenerInfo()] : [])];
  }

  status() {
    return { ...this.tcp.status(), udpPeers: this.udp?.status() ?? [] };
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + graceMs;
    await Promise.all([this.tcp.drain(deadline), this.udp?.stop()]);
  }
}
