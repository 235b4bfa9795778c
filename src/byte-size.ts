// Sizes as people read them: the CLI's progress bars and the adapters' file-too-large replies both show them.
const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

export function byteScale(bytes: number): { divisor: number; unit: string } {
  let index = 0;
  while (Math.abs(bytes) >= 1000 ** (index + 1) && index < BYTE_UNITS.length - 1) index++;
  return { divisor: 1000 ** index, unit: BYTE_UNITS[index] };
}

export function scaledBytes(bytes: number, divisor: number): string {
  return divisor === 1 ? String(Math.round(bytes)) : (bytes / divisor).toFixed(1);
}

/** Decimal units, as the Hugging Face hub shows sizes: 1234567 -> "1.2 MB". */
export function formatBytes(bytes: number): string {
  const { divisor, unit } = byteScale(bytes);
  return `${scaledBytes(bytes, divisor)} ${unit}`;
}
