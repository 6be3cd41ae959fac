/** Base class of every error kiln throws on purpose. */
export class KilnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** Shapes that do not fit together, or sizes and dims that are out of range. */
export class ShapeError extends KilnError {}
/** A dtype the operation does not accept, or two that do not mix. */
export class DTypeError extends KilnError {}
/** No adapter, a lost device, a kernel that failed to compile, a limit exceeded. */
export class DeviceError extends KilnError {}
/** Use of a tensor after dispose(). */
export class DisposedError extends KilnError {}
/** An argument with a value outside its domain (a learning rate of NaN, p = 1.5, ...). */
export class ValueError extends KilnError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
