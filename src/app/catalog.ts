/** The bundled base models, listed in public/models/index.json. */
import { FileLoadError } from '../lib/errors';
export interface CatalogEntry {
  id: string;
  label: string;
  description: string;
}

export async function loadCatalog(baseUrl: string): Promise<CatalogEntry[]> {
  const res = await fetch(`${baseUrl}models/index.json`);
  if (!res.ok) throw new FileLoadError(`could not read the model list (HTTP ${res.status}); reload the page`);
  return ((await res.json()) as { models: CatalogEntry[] }).models;
}
