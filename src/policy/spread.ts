/** A region as the spread sees it. */
export interface SpreadRegion {
  name: string;
  /** Workers the region can still place now (may be negative). */
  capacity: number;
  /** Relative share (default 1). */
  weight?: number;
  /** Regions with a failed or stale read get nothing. */
  healthy?: boolean;
}

/**
 * Spread `total` new workers over regions: shares proportional to weight, never more than a region's
 * capacity, and what a full region cannot take goes to the others. The whole amount is delivered whenever
 * the regions' combined capacity allows (upstream's lay-off spread lost the remainder: 5 over [10, 10] gave
 * [2, 2]). Deterministic: ties go to the region listed first.
 */
export function spreadHires(total: number, regions: readonly SpreadRegion[]): Record<string, number> {
  const planned: Record<string, number> = Object.fromEntries(regions.map((region) => [region.name, 0]));
  const room = new Map(
    regions.map((region) => [region.name, region.healthy === false ? 0 : Math.floor(region.capacity)]),
  );
  const roomOf = (region: SpreadRegion) => room.get(region.name) ?? 0;
  let remaining = Math.max(0, Math.floor(total));
  let open = regions.filter((region) => roomOf(region) > 0);

  // Each round gives at least one worker (the shares add up to what is left), so this ends.
  while (remaining > 0 && open.length > 0) {
    const weightSum = open.reduce((sum, region) => sum + (region.weight ?? 1), 0);
    // Largest-remainder apportionment of what is left among regions with room.
    const quotas = open.map((region, index) => {
      const exact = (remaining * (region.weight ?? 1)) / weightSum;
      return { region, index, whole: Math.floor(exact), fraction: exact - Math.floor(exact) };
    });
    let leftover = remaining - quotas.reduce((sum, quota) => sum + quota.whole, 0);
    const byFraction = [...quotas].sort((a, b) => b.fraction - a.fraction || a.index - b.index);
    for (const quota of byFraction) {
      if (leftover <= 0) break;
      quota.whole += 1;
      leftover -= 1;
    }
    for (const { region, whole } of quotas) {
      const take = Math.min(whole, roomOf(region));
      planned[region.name] = (planned[region.name] ?? 0) + take;
      room.set(region.name, roomOf(region) - take);
      remaining -= take;
    }
    open = open.filter((region) => roomOf(region) > 0);
  }
  return planned;
}
