// Made at build time by build.mjs from ingest/error_catalog.json: catalog code -> category,
// for the codes a player's error can map to (the full catalog stays on the server).
declare module "virtual:catalog-categories" {
  const categories: Record<string, string>;
  export default categories;
}
