// Redfish conventions the northbound shares (DSP0266): OData annotations,
// collections, error bodies with @Message.ExtendedInfo, the mapping of CXL
// FM-API return codes to Redfish errors, and this project's message
// registry (CxlMhd.1.0).
import { type Collection, collectionType, messageId, typeOf, type Versioned } from './dmtf.js';

export const REGISTRY = 'CxlMhd.1.0';

export function odata(id: string, type: Versioned, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const name = id.split('/').pop() as string;
  return { '@odata.id': id, '@odata.type': typeOf(type), Id: name, ...extra };
}

export function link(id: string): { '@odata.id': string } {
  return { '@odata.id': id };
}

export function collection(id: string, type: Collection, name: string, members: string[]): Record<string, unknown> {
  return {
    '@odata.id': id,
    '@odata.type': collectionType(type),
    Name: name,
    Members: members.map(link),
    'Members@odata.count': members.length,
  };
}

export interface MessageInfo {
  '@odata.type': string;
  MessageId: string;
  Message: string;
  MessageArgs: string[];
  MessageSeverity: string;
  Resolution: string;
}

/** `@Message.ExtendedInfo` carrying the messages of `errors`, for a successful answer that has something to say. */
export function extendedInfo(...errors: RedfishError[]): { '@Message.ExtendedInfo': unknown[] } {
  return { '@Message.ExtendedInfo': errors.map((e) => (e.body().error as Record<string, unknown[]>)['@Message.ExtendedInfo']?.[0]) };
}

/** An error the service answers with: status, a Base message id, and the sentence for people. */
export class RedfishError extends Error {
  constructor(
    readonly status: number,
    readonly messageId: string,
    message: string,
    readonly args: string[] = [],
    readonly resolution = 'None.',
  ) {
    super(message);
  }

  body(): Record<string, unknown> {
    const id = this.messageId.includes('.') ? this.messageId : messageId('Base', this.messageId);
    const info: MessageInfo = {
      '@odata.type': typeOf('Message'),
      MessageId: id,
      Message: this.message,
      MessageArgs: this.args,
      MessageSeverity: this.status >= 500 ? 'Critical' : 'Warning',
      Resolution: this.resolution,
    };
    return { error: { code: id, message: this.message, '@Message.ExtendedInfo': [info] } };
  }
}

export const notFound = (url: string) =>
  new RedfishError(404, 'ResourceMissingAtURI', `The resource at the URI ${url} was not found.`, [url], 'Use a URI the service links to.');

// CXL r3.1 return codes the FM-API answers with, by value.
const FM_CODES: Record<number, [name: string, status: number, messageId: string]> = {
  2: ['Invalid Input', 400, 'PropertyValueIncorrect'],
  3: ['Unsupported', 400, 'ActionNotSupported'],
  4: ['Internal Error', 500, 'InternalError'],
  5: ['Retry Required', 503, 'ServiceTemporarilyUnavailable'],
  6: ['Busy', 503, 'ServiceTemporarilyUnavailable'],
  21: ['Unsupported Mailbox', 503, 'ServiceTemporarilyUnavailable'],
  22: ['Invalid Payload Length', 400, 'PropertyValueIncorrect'],
  29: ['Resources Exhausted', 409, 'ResourceExhaustion'],
};

/**
 * A CXL return code as a Redfish error whose message names the code. The
 * backend answers Unsupported Mailbox on fm.sock while the lease owner is
 * detached: that is a 503, the FM-API is unreachable for now.
 */
export function fmCodeError(code: number, what: string): RedfishError {
  const hex = `0x${code.toString(16).padStart(2, '0')}`;
  const [name, status, id] = FM_CODES[code] ?? [`return code ${hex}`, 500, 'InternalError'];
  const detached = code === 0x15 ? ' (the FM-LD lease owner is detached; the FM-API answers again once it is back)' : '';
  return new RedfishError(
    status,
    id,
    `${what}: the FM-API answered ${name} (${hex})${detached}.`,
    [what, name, hex],
    status === 409 ? 'Choose capacity no other head holds exclusively, or release it first.' : 'See the service log for the reason.',
  );
}

type RegistryMessage = {
  Description: string;
  Message: string;
  NumberOfArgs: number;
  ParamTypes: string[];
  MessageSeverity: string;
  Resolution: string;
};

function msg(description: string, message: string, params: string[], severity = 'OK'): RegistryMessage {
  return {
    Description: description,
    Message: message,
    NumberOfArgs: params.length,
    ParamTypes: params,
    MessageSeverity: severity,
    Resolution: 'None.',
  };
}

export const CXL_MHD_MESSAGES: Record<string, RegistryMessage> = {
  HeadAttached: msg('A QEMU head attached to the pool.', 'Head %1 attached (QEMU pid %2, delivery %3).', ['number', 'number', 'string']),
  HeadDetached: msg('A head left the pool; its grants were freed.', 'Head %1 detached: %2.', ['number', 'string'], 'Warning'),
  HeadRefused: msg('A QEMU tried to attach as a head and was refused.', 'Head %1 was refused: %2.', ['number', 'string'], 'Warning'),
  LeaseAcquired: msg('A head took the FM-LD lease: it owns the FM-API.', 'Head %1 acquired the FM-LD lease (epoch %2).', [
    'number',
    'number',
  ]),
  LeaseReleased: msg('The FM-LD lease was freed.', 'Head %1 released the FM-LD lease (epoch %2).', ['number', 'number']),
  CapacityAdded: msg('Pool capacity was added to a head.', '%1 bytes at pool offset %2 were added to head %3 (%4) via %5.', [
    'number',
    'number',
    'number',
    'string',
    'string',
  ]),
  CapacityReleased: msg('Pool capacity was released from a head.', '%1 bytes at pool offset %2 were released from head %3 via %4.', [
    'number',
    'number',
    'number',
    'string',
  ]),
  CapacityQuarantined: msg(
    'Released capacity stays held by its head: QEMU does not show that the guest can no longer reach it.',
    '%1 bytes at pool offset %2 released from head %3 are quarantined: %4.',
    ['number', 'number', 'number', 'string'],
  ),
};

export function registryBody(): Record<string, unknown> {
  return {
    '@odata.type': typeOf('MessageRegistry'),
    Id: `${REGISTRY}.0`,
    Name: 'cxl-mhd message registry',
    Language: 'en',
    Description: 'Events of a cxl-mhd pool: heads attaching and leaving, the FM-LD lease, capacity moves.',
    RegistryPrefix: 'CxlMhd',
    RegistryVersion: '1.0.0',
    OwningEntity: 'cxl-mhd',
    Messages: CXL_MHD_MESSAGES,
  };
}

/** Fills %1..%n of a registry message. */
export function formatMessage(key: string, args: (string | number)[]): string {
  const m = CXL_MHD_MESSAGES[key];
  if (!m) return key;
  return m.Message.replace(/%(\d+)/g, (_, n: string) => String(args[Number(n) - 1] ?? ''));
}
