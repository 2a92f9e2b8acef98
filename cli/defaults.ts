// Default paths: the ones the existing Python GUI and its helper scripts hard-code.
export const DEFAULTS = {
  configPath: '/etc/bastion/config.json',
  rulesPath: '/etc/bastion/rules.json',
  guiSocketPath: '/run/bastion/bastion-daemon.sock',
  endpoint: 'ipc:///run/bastion/helper.sock',
  queueNum: 1,
  socketGroup: 'bastion',
  /** The helper's bus: the group of its socket (the service's user alone) and who may be its peer. */
  busGroup: 'bastion-bus',
  serviceUser: 'bastion',
} as const;
