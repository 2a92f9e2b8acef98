// `bastion status` says whether the kernel decides path rules, from the helper's capabilities.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decisionPathLine } from '../../cli/clientCommands.js';

describe('bastion status: the decision path line', () => {
  it('names the kernel when the helper announced kernel_verdicts', () => {
    assert.equal(decisionPathLine(['caller_bpf', 'caller_exe', 'kernel_verdicts']), 'path rules in the kernel (eBPF), everything else in the queue');
  });

  it('names the queue otherwise, and for an older helper', () => {
    for (const capabilities of [['caller_bpf', 'caller_exe'], undefined]) assert.match(decisionPathLine(capabilities), /^every new connection in the queue/);
  });
});
