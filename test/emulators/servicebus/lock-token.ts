import { randomUUID } from "node:crypto";

/**
 * Service Bus lock tokens are GUIDs. On a receive link the delivery tag carries them in .NET byte order
 * (the first three groups little-endian); `$management` requests carry them as AMQP uuids (standard order).
 */
export function newLockToken(): string {
  return randomUUID();
}

/** Standard-order bytes of a GUID string. */
export function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ""), "hex");
}

export function bytesToUuid(bytes: Buffer): string {
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Swaps between standard and .NET GUID byte order (the swap is its own inverse). */
export function swapGuidByteOrder(bytes: Buffer): Buffer {
  if (bytes.length !== 16) throw new Error(`a lock token has 16 bytes, got ${bytes.length}`);
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  return Buffer.from(order.map((i) => bytes[i] as number));
}

export function lockTokenToDeliveryTag(lockToken: string): Buffer {
  return swapGuidByteOrder(uuidToBytes(lockToken));
}

export function deliveryTagToLockToken(tag: Buffer | string): string | undefined {
  const bytes = typeof tag === "string" ? Buffer.from(tag) : tag;
  return bytes.length === 16 ? bytesToUuid(swapGuidByteOrder(bytes)) : undefined;
}
