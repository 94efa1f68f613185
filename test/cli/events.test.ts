// What `cxl-mhd events` prints for each payload of the stream: one line per
// main record of an Event, one line per MetricReport (per-head values named
// by their head).
import { describe, expect, it } from 'vitest';
import { describeEvent } from '../../src/cli/events.js';

describe('cxl-mhd events lines', () => {
  it('a MetricReport is one line of its values; an Event one line per non-ResourceEvent record', () => {
    const report = {
      '@odata.type': '#MetricReport.v1_5_2.MetricReport',
      Id: 'PoolUsage',
      Timestamp: '2026-12-06T06:00:00.000Z',
      MetricValues: [
        { MetricId: 'PoolFreeBytes', MetricValue: '1024', MetricProperty: '/redfish/v1/Chassis/p#/Oem/CxlMhd/FreeBytes' },
        {
          MetricId: 'HeadGrantedBytes',
          MetricValue: '512',
          MetricProperty: '/redfish/v1/Fabrics/CXL/Endpoints/head2#/Oem/CxlMhd/GrantedBytes',
        },
      ],
    };
    expect(describeEvent(report)).toEqual([
      '2026-12-06T06:00:00.000Z MetricReport PoolUsage: PoolFreeBytes=1024 HeadGrantedBytes[head2]=512',
    ]);
    const event = {
      '@odata.type': '#Event.v1_13_0.Event',
      Id: '7',
      Events: [
        {
          MessageId: 'CxlMhd.1.0.HeadDetached',
          Message: 'Head 1 detached: gone.',
          EventTimestamp: 't',
          OriginOfCondition: { '@odata.id': '/e' },
        },
        { MessageId: 'ResourceEvent.1.4.ResourceChanged', Message: 'x', EventTimestamp: 't' },
      ],
    };
    expect(describeEvent(event)).toEqual(['t #7 HeadDetached: Head 1 detached: gone. [/e]']);
  });
});
