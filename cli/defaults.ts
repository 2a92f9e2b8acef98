// Default paths: the ones the existing Python GUI and its helper scripts hard-code.
export const DEFAULTS = {
  configPath: '/etc/bastion/config.json',
  rulesPath: '/etc/bastion/rules.json',
  guiSocketPath: '/run/bastion/bastion-daemon.sock',
  /** The helper's bus, in a directory of its own that only root and the service's user reach (not the GUI group's /run/bastion). */
  endpoint: 'ipc:///run/bastion-helper/helper.sock',
  queueNum: 1,
  socketGroup: 'bastion',
  /** The helper's bus: the group of its socket (the service's user alone) and who may be its peer. */
  busGroup: 'bastion-bus',
  serviceUser: 'bastion',
} as const;
