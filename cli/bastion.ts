#!/usr/bin/env node
// The `bastion` command: starts either process, or talks to the service over its GUI socket.
import { Command } from 'commander';
import { packageVersion } from '../common/system.js';
import { registerAgentCommands } from './agent/agentCommand.js';
import { registerCheckConfigCommand } from './checkConfigCommand.js';
import { registerClientCommands } from './clientCommands.js';
import { handleClosedOutput } from './closedOutput.js';
import { registerDaemonCommand } from './daemonCommand.js';
import { registerHelperCommand } from './helperCommand.js';
import { registerInstallFileCommand } from './installFileCommand.js';
import { registerLogCommand } from './logCommand.js';
import { registerRunCommand } from './runCommand.js';

const program = new Command('bastion').description('Bastion application firewall').version(packageVersion());
handleClosedOutput(program);
registerHelperCommand(program);
registerDaemonCommand(program);
registerRunCommand(program);
registerClientCommands(program);
registerCheckConfigCommand(program);
registerInstallFileCommand(program);
registerLogCommand(program);
registerAgentCommands(program);
await program.parseAsync(process.argv);
