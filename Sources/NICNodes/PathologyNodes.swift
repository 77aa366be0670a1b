import Flow

/// The pathology node types, added to the engine's generic ones by the `nic` command line.
public enum PathologyNodes {
    public static var all: [any NodeType.Type] { [PredictionsSource.self, Evaluator.self, SlidesSource.self, TileSampler.self, AugmenterNode.self,
                                                  EncoderNode.self, Compressor.self, PatientModel.self, Probe.self, Compare.self,
                                                  FeaturesSource.self, AnnotationsSource.self, ObjectCount.self, ApplyModel.self,
                                                  HeadMaps.self, GridReadout.self, GridFilter.self] }
    public static var registry: NodeRegistry { NodeRegistry.builtin.merging(all) }
}
