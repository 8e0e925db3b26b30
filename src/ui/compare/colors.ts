/** One colour per lane, the same in every chart, table and diagram of the Compare screen. */
export const LANE_COLORS = [
  '#2563eb',
  '#dc2626',
  '#16a34a',
  '#9333ea',
  '#ea580c',
  '#0891b2',
  '#ca8a04',
  '#db2777',
  '#475569',
  '#65a30d',
] as const;

export function laneColor(index: number): string {
  return LANE_COLORS[index % LANE_COLORS.length]!;
}
