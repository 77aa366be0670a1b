import Flow
import Foundation
import ToyNodes
import XCTest

/// matrix, foreach, defaults and include: the nodes they give, their names and params, and errors
/// that point at the template (and name the instance).
final class ExpansionTests: XCTestCase {
    var ws: Workspace!
    override func setUpWithError() throws { ws = try Workspace() }

    func params(_ graph: PipelineGraph, _ node: String) -> [String: String] {
        (graph.node(named: node)?.params ?? [:]).mapValues(\.canonicalJSON)
    }

    func testMatrixNamesSubstitutionAndMappingEntries() throws {
        let graph = try ws.graph("""
        pipeline: p
        nodes:
          word:
            type: emit
            matrix:
              lang: [en, fr]
              size:
                small: {repeat: 1, tags: [s]}
                big:   {repeat: 3, tags: [b, "2"]}
            params: {value: "hello-${lang}-${size}", scale: 2}
          joined:
            type: concat
            matrix: {lang: [en, fr]}
            in: {a: "word@${lang}-small", b: "word@${lang}-big"}
            params: {separator: "${lang}"}
        """)
        XCTAssertEqual(graph.nodes.map(\.name).sorted(), ["joined@en", "joined@fr", "word@en-big", "word@en-small", "word@fr-big", "word@fr-small"])
        XCTAssertEqual(params(graph, "word@fr-big")["value"], "\"hello-fr-big\"")
        XCTAssertEqual(params(graph, "word@fr-big")["repeat"], "3", "an entry's fields are params")
        XCTAssertEqual(params(graph, "word@fr-big")["tags"], "[\"b\",\"2\"]")
        XCTAssertEqual(params(graph, "word@en-small")["scale"], "2.0")
        XCTAssertEqual(graph.node(named: "joined@fr")?.inputs["a"]?.node, "word@fr-small")
        XCTAssertEqual(params(graph, "joined@fr")["separator"], "\"fr\"")
        let instance = try XCTUnwrap(graph.node(named: "word@fr-big")?.spec.instance)
        XCTAssertEqual(instance.template, "word")
        XCTAssertEqual(instance.axes, ["lang", "size"])
        XCTAssertEqual(instance.labels, ["fr", "big"])
        XCTAssertEqual(graph.spec.templates.map(\.name), ["word", "joined"])
    }

    func testWholeValueSubstitutionKeepsTheValueType() throws {
        let graph = try ws.graph("""
        pipeline: p
        nodes:
          a:
            type: emit
            foreach: {two: {count: 2, list: [x, y]}}
            params: {value: v, repeat: "${item.count}", tags: "${item.list}"}
        """)
        XCTAssertEqual(params(graph, "a@two")["repeat"], "2", "an int stays an int though the template quotes ${...}")
        XCTAssertEqual(params(graph, "a@two")["tags"], "[\"x\",\"y\"]")
    }

    func testForeachOverInstancesInheritsAxesAndOverNamedItems() throws {
        let graph = try ws.graph("""
        pipeline: p
        nodes:
          judge:
            type: concat
            foreach: [word, lone]
            in: {a: "${item}"}
            params: {separator: "${item}"}
          word: {type: emit, matrix: {lang: [en, fr]}, params: {value: "${lang}"}}
          lone: {type: emit, params: {value: z}}
          pair:
            type: concat
            foreach:
              en-fr: {a: word@en, b: word@fr}
              fr-en: {a: word@fr, b: word@en}
            in: {a: "${item.a}", b: "${item.b}"}
        """)
        XCTAssertEqual(Set(graph.nodes.map(\.name)), ["word@en", "word@fr", "lone", "judge@word-en", "judge@word-fr", "judge@lone", "pair@en-fr", "pair@fr-en"])
        XCTAssertEqual(params(graph, "judge@word-fr")["separator"], "\"word@fr\"")
        XCTAssertEqual(graph.node(named: "pair@fr-en")?.inputs["b"]?.node, "word@en")
        let judged = try XCTUnwrap(graph.node(named: "judge@word-fr")?.spec.instance)
        XCTAssertEqual(judged.label("lang"), "fr", "an item's axes stay in scope")
        XCTAssertEqual(judged.source, "word")
    }

    func testDefaultsPerTypeLoseToOwnParams() throws {
        let graph = try ws.graph("""
        pipeline: p
        defaults:
          emit: {repeat: 4, scale: 0.5}
        nodes:
          a: {type: emit, params: {value: x}}
          b: {type: emit, params: {value: y, repeat: 2}}
          c: {type: concat, in: {a: a}}
        """)
        XCTAssertEqual(params(graph, "a")["repeat"], "4")
        XCTAssertEqual(params(graph, "a")["scale"], "0.5")
        XCTAssertEqual(params(graph, "b")["repeat"], "2")
    }

    /// A node written by hand and the same node from a template have one key.
    func testExpandedKeysEqualHandWritten() throws {
        let expanded = try Planner.plan(try ws.graph("""
        pipeline: p
        defaults: {concat: {separator: "-"}}
        nodes:
          word: {type: emit, matrix: {lang: {en: {value: hello}, fr: {value: bonjour}}}, params: {repeat: 2}}
          both: {type: concat, in: {a: word@en, b: word@fr}}
        """, file: "a.yaml"), cache: ws.cache)
        let hand = try Planner.plan(try ws.graph("""
        pipeline: q
        nodes:
          hello: {type: emit, params: {value: hello, repeat: 2}}
          bonjour: {type: emit, params: {repeat: 2, value: bonjour}}
          both: {type: concat, in: {a: hello, b: bonjour}, params: {separator: "-"}}
        """, file: "b.yaml"), cache: ws.cache)
        XCTAssertEqual(expanded.node(named: "word@en")?.key, hand.node(named: "hello")?.key)
        XCTAssertEqual(expanded.node(named: "word@fr")?.key, hand.node(named: "bonjour")?.key)
        XCTAssertEqual(expanded.node(named: "both")?.key, hand.node(named: "both")?.key)
    }

    func testIncludeMergesAndAddsInstances() throws {
        try ws.write("base.yaml", """
        pipeline: base
        defaults: {emit: {repeat: 2, scale: 3}}
        nodes:
          word: {type: emit, matrix: {lang: [en]}, params: {value: "${lang}"}}
          judge: {type: concat, foreach: word, in: {a: "${item}"}}
        """)
        let graph = try ws.graph("""
        pipeline: more
        include: base.yaml
        defaults: {emit: {repeat: 5}}
        nodes:
          word: {type: emit, matrix: {lang: [de]}, params: {value: "${lang}"}}
        """)
        XCTAssertEqual(Set(graph.nodes.map(\.name)), ["word@en", "word@de", "judge@en", "judge@de"], "a foreach follows instances an including file adds")
        XCTAssertEqual(params(graph, "word@en")["repeat"], "5", "the including file's defaults win")
        XCTAssertEqual(params(graph, "word@en")["scale"], "3.0")
        XCTAssertEqual(graph.spec.included, ["base.yaml"])
    }

    func testRedefinitionAcrossIncludeIsLocatedInBothFiles() throws {
        try ws.write("base.yaml", """
        pipeline: base
        nodes:
          a: {type: emit, params: {value: x}}
        """)
        let errors = ws.errors("""
        pipeline: more
        include: base.yaml

        nodes:
          a: {type: emit, params: {value: y}}
        """)
        XCTAssertTrue(errors.contains { $0.hasPrefix("5:3:") && $0.contains("'a' is defined again here (first at base.yaml:3:3)") }, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasPrefix("3:3:") && $0.contains("again at pipeline.yaml:5:3") }, "\(errors)")
    }

    func testConflictingDefaultsOfTwoIncludedFiles() throws {
        try ws.write("one.yaml", "pipeline: one\ndefaults: {emit: {repeat: 2}}\nnodes: {}\n")
        try ws.write("two.yaml", "pipeline: two\ndefaults: {emit: {repeat: 3}}\nnodes: {}\n")
        let errors = ws.errors("pipeline: p\ninclude: [one.yaml, two.yaml]\nnodes:\n  a: {type: emit, params: {value: x}}\n")
        XCTAssertTrue(errors.contains { $0.contains("conflict between included files") }, "\(errors)")
    }

    func testIncludeCycleAndMissingFile() {
        try? ws.write("loop.yaml", "pipeline: loop\ninclude: pipeline.yaml\nnodes: {}\n")
        XCTAssertTrue(ws.errors("pipeline: p\ninclude: loop.yaml\nnodes: {}\n").contains { $0.contains("include cycle") })
        XCTAssertTrue(ws.errors("pipeline: p\ninclude: nope.yaml\nnodes: {}\n").contains { $0.hasPrefix("2:10:") && $0.contains("nope.yaml") })
    }

    /// A mistake in the template is reported once, at the template, naming an instance.
    func testTemplateErrorIsLocatedAndNamesTheInstance() {
        let errors = ws.errors("""
        pipeline: p
        nodes:
          word:
            type: emit
            matrix: {lang: [en, fr, de]}
            params: {value: "${lng}"}
        """)
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertTrue(errors[0].hasPrefix("6:21:") && errors[0].contains("node 'word@en'") && errors[0].contains("unknown variable '${lng}'")
                      && errors[0].contains("did you mean 'lang'"), "\(errors)")
    }

    /// A bad value in one instance: located where the value is written, naming that instance.
    func testBadInstanceIsLocatedAndNamed() {
        let errors = ws.errors("""
        pipeline: p
        nodes:
          word:
            type: emit
            matrix:
              n:
                ok:  {repeat: 2}
                bad: {repeat: 5000}
            params: {value: x}
        """)
        XCTAssertTrue(errors.contains { $0.hasPrefix("8:23:") && $0.contains("node 'word@bad' param 'repeat'") }, "\(errors)")
        XCTAssertEqual(errors.count, 1, "\(errors)")
    }

    func testUnknownParamInTemplateIsReportedOnceForAllInstances() {
        let errors = ws.errors("""
        pipeline: p
        nodes:
          word: {type: emit, matrix: {lang: [en, fr, de]}, params: {value: x, repaet: 2}}
        """)
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertTrue(errors[0].hasPrefix("3:71:") && errors[0].contains("and 2 more instances"), "\(errors)")
    }

    func testBadAxisAndForeachErrors() {
        XCTAssertTrue(ws.errors("pipeline: p\nnodes:\n  a: {type: emit, matrix: {f: [x/y]}, params: {value: v}}\n")
            .contains { $0.hasPrefix("3:32:") && $0.contains("cannot be part of a node name") })
        XCTAssertTrue(ws.errors("pipeline: p\nnodes:\n  a: {type: concat, foreach: [wrod], in: {a: \"${item}\"}}\n  word: {type: emit, params: {value: v}}\n")
            .contains { $0.hasPrefix("3:31:") && $0.contains("foreach over 'wrod'") && $0.contains("did you mean 'word'") })
        XCTAssertTrue(ws.errors("pipeline: p\nnodes:\n  a: {type: emit, matrix: {n: [x]}, params: {value: v}}\n  b: {type: concat, in: {a: a@y}}\n")
            .contains { $0.hasPrefix("4:29:") && $0.contains("refers to 'a@y'") && $0.contains("did you mean 'a@x'") })
        XCTAssertTrue(ws.errors("pipeline: p\nnodes:\n  a@: {type: emit, params: {value: v}}\n").contains { $0.contains("invalid node name 'a@'") })
        XCTAssertTrue(ws.errors("pipeline: p\nnodes:\n  a@b: {type: emit, matrix: {n: [x]}, params: {value: v}}\n").contains { $0.contains("invalid node name 'a@b'") })
    }

    func testDefaultsForUnknownTypeOrParam() {
        let errors = ws.errors("pipeline: p\ndefaults: {emitt: {repeat: 2}, emit: {repaet: 1}}\nnodes:\n  a: {type: emit, params: {value: v}}\n  b: {type: emit, params: {value: w}}\n")
        XCTAssertTrue(errors.contains { $0.hasPrefix("2:12:") && $0.contains("unknown node type 'emitt'") }, "\(errors)")
        XCTAssertEqual(errors.filter { $0.contains("unknown param 'repaet'") }.count, 1, "\(errors)")
    }

    /// `nic expand`'s text is a plain pipeline with the same nodes and keys.
    func testExpandedTextPlansToTheSameKeys() throws {
        let yaml = """
        pipeline: p
        defaults: {emit: {scale: 1.5}}
        nodes:
          word: {type: emit, matrix: {lang: {en: {value: "a: b"}, fr: {value: "3", tags: [x]}}}, params: {repeat: 2}}
          judge: {type: concat, foreach: word, in: {a: "${item}"}, params: {separator: "-1"}}
        """
        let graph = try ws.graph(yaml)
        let text = graph.spec.expandedYAML
        XCTAssertFalse(text.contains("${"), text)
        let original = try Planner.plan(graph, cache: ws.cache)
        let replanned = try Planner.plan(try ws.graph(text, file: "expanded.yaml"), cache: ws.cache)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: original.nodes.map { ($0.name, $0.key) }),
                       Dictionary(uniqueKeysWithValues: replanned.nodes.map { ($0.name, $0.key) }), text)
    }
}
