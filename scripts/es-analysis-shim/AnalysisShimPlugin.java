/*
 * The Elasticsearch integ-test distribution lacks the analysis-common module, and the
 * `.security` system index (which stores API keys, among others) declares an "email" analyzer
 * built from the uax_url_email tokenizer and the pattern_capture, lowercase and unique token
 * filters; all but lowercase (pre-configured in the server) live in that module.  Without them
 * the index cannot be created and API keys cannot be issued.  This plugin provides the three
 * missing names from the Lucene classes the
 * distribution already ships (the real module uses the same Lucene classes; "unique" is
 * approximated by RemoveDuplicatesTokenFilter).  scripts/nodes.py compiles it against the
 * unpacked distribution and installs it under plugins/ (see scripts/nodes.py:install_analysis_shim).
 */
package org.ecsmetricshandler.testing;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.index.analysis.PreConfiguredTokenizer;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

public class AnalysisShimPlugin extends Plugin implements AnalysisPlugin {

    private static TokenFilterFactory filter(String name, Function<TokenStream, TokenStream> make) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream tokenStream) {
                return make.apply(tokenStream);
            }
        };
    }

    private static Pattern[] patterns(Settings settings) {
        List<String> regexes = settings.getAsList("patterns");
        Pattern[] compiled = new Pattern[regexes.size()];
        for (int i = 0; i < compiled.length; i++) {
            compiled[i] = Pattern.compile(regexes.get(i));
        }
        return compiled;
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        Map<String, AnalysisProvider<TokenFilterFactory>> filters = new TreeMap<>();
        filters.put("pattern_capture", (indexSettings, env, name, settings) -> {
            boolean preserve = settings.getAsBoolean("preserve_original", true);
            Pattern[] compiled = patterns(settings);
            return filter(name, ts -> new PatternCaptureGroupTokenFilter(ts, preserve, compiled));
        });
        filters.put("unique", (indexSettings, env, name, settings) -> filter(name, RemoveDuplicatesTokenFilter::new));
        return filters;
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        Map<String, AnalysisProvider<TokenizerFactory>> tokenizers = new TreeMap<>();
        tokenizers.put("uax_url_email",
            (indexSettings, env, name, settings) -> TokenizerFactory.newFactory(name, UAX29URLEmailTokenizer::new));
        return tokenizers;
    }

    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        return List.of(
            PreConfiguredTokenFilter.singleton("unique", false, RemoveDuplicatesTokenFilter::new)
        );
    }

    @Override
    public List<PreConfiguredTokenizer> getPreConfiguredTokenizers() {
        return List.of(PreConfiguredTokenizer.singleton("uax_url_email", UAX29URLEmailTokenizer::new));
    }
}
