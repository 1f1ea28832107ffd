/**
 * An error the server answers with a status and OpenAI's error JSON,
 * `{error: {message, type, param, code}}`, so an OpenAI client raises its
 * usual exception with our message in it.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers, e.g. Retry-After on 429. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 naming the request field that is wrong. */
export const invalidParam = (param: string | null, message: string, code: string | null = null): ApiError => new ApiError(400, message, 'invalid_request_error', param, code);

export const modelNotFound = (model: string): ApiError =>
  new ApiError(404, `The model "${model}" does not exist (GET /v1/models lists the served ones)`, 'invalid_request_error', 'model', 'model_not_found');
