// The class lives in src/lib/errors.ts so the worker protocol can rebuild it by name.
export { DataImportError, type DataImportErrorCode } from '../../errors';
