// Default paths: the ones the existing Python GUI and its helper scripts hard-code.
export const DEFAULTS = {
  configPath: '/etc/bastion/config.json',
  rulesPath: '/etc/bastion/rules.json',
  guiSocketPath: '/run/bastion/bastion-daemon.sock',
  endpoint: 'ipc:///run/bastion/helper.sock',
  queueNum: 1,
  socketGroup: 'bastion',
} as const;
