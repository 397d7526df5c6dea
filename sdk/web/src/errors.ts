import categories from "virtual:catalog-categories";
import table from "../../../ingest/player_error_codes.json";

/** Which player an error code comes from (the keys of ingest/player_error_codes.json). */
export type PlayerKind = "hls.js" | "dash.js" | "video";

interface PlayerCodes {
  default: string;
  codes: Record<string, string>;
}

const players = (table as { players: Record<PlayerKind, PlayerCodes> }).players;

/**
 * The catalog code (ingest/error_catalog.json) of a player's own error code: hls.js details
 * ("fragLoadError"), dash.js numeric codes (27), MediaError codes of a bare <video> (2).
 */
export function catalogCode(player: PlayerKind, code: string | number): string {
  const entry = players[player];
  return entry.codes[String(code)] ?? entry.default;
}

/** The catalog category of a catalog code (network, cdn, manifest, decoder, drm, device). */
export function categoryOf(code: string): string {
  return categories[code] ?? "device";
}
