/**
 * A named database's handle: the store modules' operations bound to it, so offload and checkpoints
 * take one narrow object (tests pass a database of their own). `openLabDb(name)` gives it.
 */
import { DEFAULT_DB_NAME, connect } from './db';
import type { BlobOptions, JsonValue } from './db';
import type { DatasetMeta } from '../data/imported';
import type { AdapterInput, AdapterMeta, AdapterRecord } from './adapters';
import type { DatasetInput } from './datasets';
import type { BlobUsage } from './blobs';
import type { ModelInput, ModelMeta, ModelRecord } from './models';
import * as adapters from './adapters';
import * as blobs from './blobs';
import * as datasets from './datasets';
import * as models from './models';
import * as settings from './settings';

export class LabDb {
  constructor(readonly name: string) {}

  saveAdapterRecord(rec: AdapterInput, opts?: BlobOptions): Promise<AdapterMeta> {
    return adapters.saveAdapterRecord(rec, opts, this.name);
  }

  listAdapters(): Promise<AdapterMeta[]> {
    return adapters.listAdapters(this.name);
  }

  listAdaptersForModel(baseModel: string): Promise<AdapterMeta[]> {
    return adapters.listAdaptersForModel(baseModel, this.name);
  }

  getAdapter(id: string): Promise<AdapterRecord | undefined> {
    return adapters.getAdapter(id, this.name);
  }

  deleteAdapter(id: string): Promise<boolean> {
    return adapters.deleteAdapter(id, this.name);
  }

  renameAdapter(id: string, name: string): Promise<AdapterMeta> {
    return adapters.renameAdapter(id, name, this.name);
  }

  saveModel(rec: ModelInput, opts?: BlobOptions): Promise<ModelMeta> {
    return models.saveModel(rec, opts, this.name);
  }

  listModels(): Promise<ModelMeta[]> {
    return models.listModels(this.name);
  }

  getModel(id: string): Promise<ModelRecord | undefined> {
    return models.getModel(id, this.name);
  }

  getModelFile(id: string, file: string): Promise<ArrayBuffer | undefined> {
    return models.getModelFile(id, file, this.name);
  }

  deleteModel(id: string): Promise<boolean> {
    return models.deleteModel(id, this.name);
  }

  saveDataset(
    rec: DatasetInput,
    files: Record<string, ArrayBuffer | ArrayBufferView>,
    opts?: BlobOptions,
  ): Promise<DatasetMeta> {
    return datasets.saveDataset(rec, files, opts, this.name);
  }

  listDatasets(): Promise<DatasetMeta[]> {
    return datasets.listDatasets(this.name);
  }

  getDataset(id: string): Promise<DatasetMeta | undefined> {
    return datasets.getDataset(id, this.name);
  }

  getDatasetFile(id: string, file: string): Promise<ArrayBuffer | undefined> {
    return datasets.getDatasetFile(id, file, this.name);
  }

  deleteDataset(id: string): Promise<boolean> {
    return datasets.deleteDataset(id, this.name);
  }

  putBlob(
    ownerId: string,
    name: string,
    bytes: ArrayBuffer | ArrayBufferView,
    opts?: BlobOptions,
  ): Promise<void> {
    return blobs.putBlob(ownerId, name, bytes, opts, this.name);
  }

  getBlob(ownerId: string, name: string): Promise<ArrayBuffer | undefined> {
    return blobs.getBlob(ownerId, name, this.name);
  }

  putBlobs(
    ownerId: string,
    entries: readonly (readonly [name: string, bytes: ArrayBuffer | ArrayBufferView])[],
    opts?: BlobOptions,
  ): Promise<void> {
    return blobs.putBlobs(ownerId, entries, opts, this.name);
  }

  getBlobs(ownerId: string, names: readonly string[]): Promise<(ArrayBuffer | undefined)[]> {
    return blobs.getBlobs(ownerId, names, this.name);
  }

  deleteBlob(ownerId: string, name: string): Promise<void> {
    return blobs.deleteBlob(ownerId, name, this.name);
  }

  deleteBlobs(ownerId: string): Promise<void> {
    return blobs.deleteBlobs(ownerId, this.name);
  }

  blobUsage(prefix: string): Promise<BlobUsage[]> {
    return blobs.blobUsage(prefix, this.name);
  }

  getSetting<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined> {
    return settings.getSetting<T>(key, this.name);
  }

  setSetting(key: string, value: JsonValue): Promise<void> {
    return settings.setSetting(key, value, this.name);
  }

  deleteSetting(key: string): Promise<void> {
    return settings.deleteSetting(key, this.name);
  }
}

const handles = new Map<string, LabDb>();

/** Opens (once per name, then cached) the database, running any upgrades; rejects with StorageError. */
export async function openLabDb(name = DEFAULT_DB_NAME): Promise<LabDb> {
  await connect(name);
  let h = handles.get(name);
  if (!h) {
    h = new LabDb(name);
    handles.set(name, h);
  }
  return h;
}
