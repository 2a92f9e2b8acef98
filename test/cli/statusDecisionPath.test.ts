// `bastion status` says whether the kernel decides path rules, from the helper's capabilities.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decisionPathLine } from '../../cli/clientCommands.js';

describe('bastion status: the decision path line', () => {
  it('names the kernel when the helper announced kernel_verdicts and its UDP allow filter', () => {
    assert.equal(
      decisionPathLine(['caller_bpf', 'caller_exe', 'kernel_verdicts', 'kernel_udp_allow']),
      'path rules in the kernel (eBPF), everything else in the queue',
    );
  });

  it('says UDP allows go to the queue when the UDP allow filter is not in place, and both reasons it may not be', () => {
    assert.match(
      decisionPathLine(['caller_bpf', 'caller_exe', 'kernel_verdicts']),
      /UDP allows in the queue \(no UDP filter: no bpf file system, --bpf-fs, or the kernel refused it; the helper's log says which\)/,
    );
  });

  it('names the queue otherwise, and for an older helper', () => {
    for (const capabilities of [['caller_bpf', 'caller_exe'], undefined]) assert.match(decisionPathLine(capabilities), /^every new connection in the queue/);
  });
});
