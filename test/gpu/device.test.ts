// init(): options are checked before any adapter is touched; a live device is returned as is.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';

describe('init', () => {
  it('rejects unknown option keys with a ValueError naming them', async () => {
    await expect(K.init({ forceSoftwre: true } as never)).rejects.toBeInstanceOf(K.ValueError);
    await expect(K.init({ forceSoftwre: true } as never)).rejects.toThrow(/'forceSoftwre'.*forceSoftware/);
    await expect(K.init('software' as never)).rejects.toThrow(K.ValueError);
  });

  it('returns the live device again', async () => {
    const a = await K.init();
    const b = await K.init();
    expect(b).toBe(a);
    expect(K.deviceInfo()).toBe(a);
  });
});
