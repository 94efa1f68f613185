// Fastify's own refusals (schema validation, body parsing, limits) as
// Redfish errors with Base message ids, so every error a client sees has
// the DSP0266 shape.
import type { FastifyError } from 'fastify';
import { RedfishError } from './redfish.js';

export function fastifyErrorToRedfish(e: FastifyError): RedfishError {
  if (e instanceof RedfishError) return e;
  if (e.validation && e.validation.length > 0) {
    const v = e.validation[0] as { keyword: string; instancePath: string; params: Record<string, unknown>; message?: string };
    const where = v.instancePath.replace(/^\//, '').replaceAll('/', '.') || 'the body';
    if (v.keyword === 'additionalProperties') {
      const prop = String(v.params.additionalProperty);
      return new RedfishError(
        400,
        'PropertyUnknown',
        `The property ${prop} is not in the list of valid properties for ${where}.`,
        [prop],
        'Remove the unknown property.',
      );
    }
    if (v.keyword === 'required') {
      const prop = String(v.params.missingProperty);
      return new RedfishError(400, 'PropertyMissing', `The property ${prop} is a required property and must be included in the request.`, [
        prop,
      ]);
    }
    if (v.keyword === 'type') {
      return new RedfishError(
        400,
        'PropertyValueTypeError',
        `The value of ${where} is of a different type than expected (${String(v.params.type)}).`,
        [where],
      );
    }
    return new RedfishError(400, 'PropertyValueIncorrect', `The value of ${where} is not valid: ${v.message ?? v.keyword}.`, [where]);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new RedfishError(413, 'GeneralError', 'The request body is larger than this service accepts.', [], 'Send a smaller body.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new RedfishError(
        415,
        'GeneralError',
        'The request body must be application/json.',
        [],
        'Send Content-Type: application/json.',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new RedfishError(
        400,
        'MalformedJSON',
        'The request body submitted was malformed JSON and could not be parsed by the receiving service.',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new RedfishError(400, 'GeneralError', 'The Content-Length does not match the body.');
  }
  if (e instanceof SyntaxError || (e.statusCode === 400 && /JSON/i.test(e.message))) {
    return new RedfishError(
      400,
      'MalformedJSON',
      'The request body submitted was malformed JSON and could not be parsed by the receiving service.',
    );
  }
  const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
  return new RedfishError(
    status,
    status === 500 ? 'InternalError' : 'GeneralError',
    status === 500 ? 'The request failed due to an internal service error; see the service log.' : e.message,
  );
}
