package fraudparity;

import java.time.Duration;
import org.apache.flink.api.common.eventtime.BoundedOutOfOrdernessWatermarks;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

/**
 * Flink's own bounded-out-of-orderness watermark (max event time - bound - 1 ms), emitted after
 * every event instead of every {@code pipeline.auto-watermark-interval} of processing time.
 *
 * <p>With periodic emission, whether an event is late depends on how many events happened to
 * arrive between two emissions, so a parity test against it could not be exact. Emitting after
 * every event is the limit of a periodic interval going to zero (what Flink SQL calls
 * {@code 'scan.watermark.emit.strategy' = 'on-event'}) and is the rule the Python worker follows.
 * PyFlink cannot define a watermark generator in Python, hence this one small class.
 */
public final class EveryEventWatermarks<T> implements WatermarkStrategy<T> {
    private static final long serialVersionUID = 1L;

    private final long outOfOrdernessMillis;

    public EveryEventWatermarks(long outOfOrdernessMillis) {
        this.outOfOrdernessMillis = outOfOrdernessMillis;
    }

    @Override
    public WatermarkGenerator<T> createWatermarkGenerator(WatermarkGeneratorSupplier.Context context) {
        BoundedOutOfOrdernessWatermarks<T> flink =
                new BoundedOutOfOrdernessWatermarks<>(Duration.ofMillis(outOfOrdernessMillis));
        return new WatermarkGenerator<T>() {
            @Override
            public void onEvent(T event, long eventTimestamp, WatermarkOutput output) {
                flink.onEvent(event, eventTimestamp, output);
                flink.onPeriodicEmit(output); // the output drops a watermark that does not advance
            }

            @Override
            public void onPeriodicEmit(WatermarkOutput output) {
                flink.onPeriodicEmit(output);
            }
        };
    }
}
