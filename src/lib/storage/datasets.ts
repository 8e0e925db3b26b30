/** The `datasets` store: imported data sets' metadata; the split files in `chunks`. */
import type { DatasetMeta } from '../data/imported';
import { DEFAULT_CHUNK_BYTES, DEFAULT_DB_NAME, inTx, newestFirst, queue } from './db';
import type { BlobOptions } from './db';
import { DATASET_OWNER, checkChunkBytes, ownerRange, queueBlobWrite, readBlob } from './chunks';

/** What `saveDataset` takes: the metadata but its sizes (computed from the files). */
export type DatasetInput = Omit<DatasetMeta, 'sizeBytes' | 'fileSizes'>;

/**
 * Stores an imported data set: its metadata and split files (name -> bytes) in one transaction,
 * so a failure (a full disk, say) leaves every data set saved before exactly as it was.
 */
export async function saveDataset(
  rec: DatasetInput,
  files: Record<string, ArrayBuffer | ArrayBufferView>,
  opts: BlobOptions = {},
  dbName = DEFAULT_DB_NAME,
): Promise<DatasetMeta> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunkBytes(chunkBytes);
  const fileSizes: Record<string, number> = {};
  let sizeBytes = 0;
  for (const [file, data] of Object.entries(files)) {
    fileSizes[file] = data.byteLength;
    sizeBytes += data.byteLength;
  }
  const meta: DatasetMeta = { ...rec, fileSizes, sizeBytes };
  const owner = DATASET_OWNER + rec.id;
  await inTx(
    dbName,
    ['datasets', 'chunks'],
    'readwrite',
    `save data set "${rec.name}"`,
    (tx) => {
      const chunks = tx.objectStore('chunks');
      const requests: Promise<unknown>[] = [];
      queue(requests, chunks.delete(ownerRange(owner)));
      for (const [file, data] of Object.entries(files)) {
        requests.push(...queueBlobWrite(chunks, owner, file, data, chunkBytes));
      }
      queue(requests, tx.objectStore('datasets').put(meta));
      return Promise.all(requests);
    },
    sizeBytes,
  );
  return meta;
}

/** Imported data sets (metadata only), newest first. */
export async function listDatasets(dbName = DEFAULT_DB_NAME): Promise<DatasetMeta[]> {
  const rows = await inTx(dbName, ['datasets'], 'readonly', 'list data sets', (tx) =>
    tx.objectStore('datasets').index('by-addedAt').getAll(),
  );
  return newestFirst(rows);
}

/** One data set's metadata, or undefined. */
export async function getDataset(id: string, dbName = DEFAULT_DB_NAME): Promise<DatasetMeta | undefined> {
  return inTx(dbName, ['datasets'], 'readonly', `read data set "${id}"`, (tx) =>
    tx.objectStore('datasets').get(id),
  );
}

/** One split file of a data set, or undefined when the data set or the file is not there. */
export async function getDatasetFile(
  id: string,
  file: string,
  dbName = DEFAULT_DB_NAME,
): Promise<ArrayBuffer | undefined> {
  return inTx(dbName, ['chunks'], 'readonly', `read ${file} of data set "${id}"`, (tx) =>
    readBlob(tx.objectStore('chunks'), DATASET_OWNER + id, file),
  );
}

/** Deletes a data set and its files; false when there was none. */
export async function deleteDataset(id: string, dbName = DEFAULT_DB_NAME): Promise<boolean> {
  return inTx(dbName, ['datasets', 'chunks'], 'readwrite', `delete data set "${id}"`, async (tx) => {
    const datasets = tx.objectStore('datasets');
    const [key] = await Promise.all([
      datasets.getKey(id),
      datasets.delete(id),
      tx.objectStore('chunks').delete(ownerRange(DATASET_OWNER + id)),
    ]);
    return key !== undefined;
  });
}
