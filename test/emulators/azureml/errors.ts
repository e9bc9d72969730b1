/** An ARM error answer: `{"error": {"code", "message", "innerError"?}}` with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly inner?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function armErrorBody(error: HttpError): unknown {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.inner ? { innerError: error.inner } : {}),
      details: [],
      additionalInfo: [],
    },
  };
}

export const PROVIDER = "Microsoft.MachineLearningServices";
export const API_VERSION = "2022-10-01";
