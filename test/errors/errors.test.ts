// Errors carry stable codes: usage mistakes are UsageError (never PoolError),
// and every class the CLI reports has a CXLMHD_ERR_* errorCode.
import { describe, expect, it } from 'vitest';
import { isCodedError, UsageError } from '../../src/errors/index.js';
import { FmClientError, FmError, PayloadError, ReturnCode } from '../../src/fmapi/index.js';
import { PoolError } from '../../src/pool/index.js';
import { headArgs, parseStaticWindow } from '../../src/qemu/index.js';
import { QmpTimeoutError } from '../../src/qmp/index.js';

describe('error codes', () => {
  it('each class the CLI reports has its stable errorCode', () => {
    expect(new UsageError('x').errorCode).toBe('CXLMHD_ERR_USAGE');
    expect(new PoolError('EXISTS', 'x').errorCode).toBe('CXLMHD_ERR_POOL_EXISTS');
    expect(new FmError(ReturnCode.Busy).errorCode).toBe('CXLMHD_ERR_FM_DEVICE');
    expect(new PayloadError(ReturnCode.InvalidInput, 'x').errorCode).toBe('CXLMHD_ERR_FM_PAYLOAD');
    expect(new FmClientError('timeout', 'x').errorCode).toBe('CXLMHD_ERR_FM_CHANNEL');
    expect(new QmpTimeoutError('query-status', 10).errorCode).toBe('CXLMHD_ERR_QMP');
    for (const e of [new UsageError('x'), new PoolError('CONFLICT', 'x'), new FmClientError('closed', 'x')])
      expect(isCodedError(e)).toBe(true);
    expect(isCodedError(new Error('x'))).toBe(false);
    expect(isCodedError(Object.assign(new Error('x'), { errorCode: 'ENOENT' }))).toBe(false);
  });

  it('qemu-args input mistakes are usage errors, not pool errors', () => {
    expect(() => parseStaticWindow('512M@1G,sideways')).toThrow(UsageError);
    expect(() => parseStaticWindow('100M')).toThrow(UsageError);
    expect(() => headArgs({ pool: 'p', head: 0, runDir: '/tmp', capacityBytes: 2 ** 30, sparePorts: 17 })).toThrow(UsageError);
    // A size that is not a size is the pool's own parse error, and still coded.
    expect(() => parseStaticWindow('lots')).toThrow(PoolError);
  });
});
