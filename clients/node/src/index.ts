export {
  ERROR_CODE_PREFIXES,
  ERROR_CODES,
  Event,
  FailureReason,
  MAX_SECRET_BYTES,
  MIN_KEY_LENGTH,
} from "./contract.js";
export {
  ApiKeyParseError,
  type Client,
  type Entry,
  KeySet,
  parseApiKeys,
  parseEntries,
  parseSecretString,
} from "./keyset.js";
export {
  ApiKeyLoader,
  classify,
  createSecretsClient,
  type KeySource,
  type LoaderOptions,
  type LoaderSettings,
  NoKeySourceError,
  REQUEST_HANDLER,
  reasonOfErrorCode,
  SecretReadError,
  type SecretsClient,
  settingsFromEnv,
} from "./loader.js";
export { formatLine, type Level, type LogLine, type LogWriter, writeToStderr } from "./logs.js";
export {
  type AuthenticatedRequest,
  apiKeyMiddleware,
  clientOf,
  type MiddlewareOptions,
  type Next,
  type Response,
} from "./middleware.js";
